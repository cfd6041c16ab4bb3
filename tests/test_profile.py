"""The profiling harness, without a GPU: replayed NVML traces and a fake clock."""

from __future__ import annotations

import csv
import errno
import importlib.util
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energylens.exceptions import (
    BackendUnavailableError,
    ImplausibleValueWarning,
    NoDeviceError,
    SchemaError,
)
from energylens.profile import (
    EnergyMeter,
    GpuTrace,
    ReplayBackend,
    counter_delta_mj,
    integrate_power,
    profile_grid,
    sweepfile,
)
from energylens.profile.backends import COUNTER_MODULUS_MJ
from energylens.profile.configs import canonical_name, normalise_value


class FakeClock:
    """Time that moves only when the test (or the fake GPU) says so."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def counter_trace(name, watts, t0=0.0, t1=1e6, offset=0):
    """A GPU drawing constant power: counter rises by watts * 1000 mJ per second."""
    return GpuTrace(name, [t0, t1], [watts * 1e3] * 2, [t0, t1], [0.0, watts * 1e3 * (t1 - t0)],
                    energy_offset_mj=offset)


# --------------------------------------------------------------------------- pure pieces
def test_integrate_power_constant_and_ramp():
    t = np.linspace(0, 10, 101)
    assert integrate_power(t, np.full_like(t, 300.0), 0, 10) == pytest.approx(3000.0)
    assert integrate_power(t, 10 * t, 0, 10) == pytest.approx(500.0)
    assert integrate_power([2.0, 4.0], [100.0, 100.0], 0, 10) == pytest.approx(1000.0)  # held flat
    assert np.isnan(integrate_power([], [], 0, 1))


def test_counter_delta_wraps_and_detects_resets():
    assert counter_delta_mj(100, 250) == 150
    near_top = COUNTER_MODULUS_MJ - 1000
    assert counter_delta_mj(near_top, 500) == 1500
    assert counter_delta_mj(10_000, 20) is None  # went backwards: a driver reset


# --------------------------------------------------------------------------- the meter
def test_counter_measurement_with_fake_clock_and_wraparound():
    clock = FakeClock(0.0)
    traces = [counter_trace("GPU-A", 250.0), counter_trace("GPU-B", 100.0, offset=COUNTER_MODULUS_MJ - 50_000)]
    meter = EnergyMeter(backend=ReplayBackend(traces, clock), sample_power=False, clock=clock,
                        sleep=clock.sleep)
    with meter.measure() as m:
        clock.sleep(2.0)  # 2 s at 250 W and 100 W; GPU-B's counter wraps past 2**64
    assert m.methods == ["counter", "counter"]
    np.testing.assert_allclose(m.per_gpu_j, [500.0, 200.0])
    assert m.energy_j == pytest.approx(700.0) and m.duration_s == pytest.approx(2.0)
    assert m.mean_power_w == pytest.approx(350.0) and m.gpu_names == ["GPU-A", "GPU-B"]


def test_power_integration_when_counter_missing():
    t0 = time.monotonic()
    trace = GpuTrace("old-GPU", [t0, t0 + 100], [200e3, 200e3])  # no counter, 200 W
    meter = EnergyMeter(backend=ReplayBackend([trace]), sample_hz=100)
    assert meter.has_counter == [False]
    with meter.measure() as m:
        time.sleep(0.3)
    assert m.method == "power-integration"
    assert m.energy_j == pytest.approx(200.0 * m.duration_s, rel=0.02)
    assert m.samples >= 10


def test_failing_samples_are_skipped_and_counted():
    t0 = time.monotonic()
    trace = GpuTrace("flaky", [t0, t0 + 100], [150e3, 150e3], fail_between=[(t0 + 0.05, t0 + 0.15)])
    meter = EnergyMeter(backend=ReplayBackend([trace]), sample_hz=100)
    with meter.measure() as m:
        time.sleep(0.3)
    assert m.failed_samples > 0
    assert m.energy_j == pytest.approx(150.0 * m.duration_s, rel=0.05)


def test_counter_reset_falls_back_to_power():
    clock = FakeClock(0.0)
    tr = GpuTrace("reset", [0, 100], [300e3, 300e3], [0, 1.0, 1.0001, 100], [5e6, 5.3e6, 0, 0])
    meter = EnergyMeter(backend=ReplayBackend([tr], clock), sample_power=True, sample_hz=1000,
                        clock=clock, sleep=clock.sleep)
    clock.t = 0.5
    with meter.measure() as m:
        clock.t = 2.0  # the counter dropped to 0 in between: a driver reset
    assert m.methods == ["power-integration"]
    assert m.energy_j == pytest.approx(300.0 * 1.5)


def test_several_gpus_idle_and_wait():
    clock = FakeClock(0.0)
    busy = GpuTrace("G0", [0, 5, 5.01, 100], [400e3, 400e3, 60e3, 60e3], [0, 100], [0, 1e6])
    idle = counter_trace("G1", 60.0)
    meter = EnergyMeter(backend=ReplayBackend([busy, idle], clock), sample_power=False, clock=clock,
                        sleep=clock.sleep, sample_hz=10)
    assert meter.wait_until_idle([60.0, 60.0], timeout_s=1.0) is False  # still busy at t <= 1
    assert meter.wait_until_idle([60.0, 60.0], timeout_s=10.0) is True  # idle after t = 5
    assert clock.t >= 5.0
    np.testing.assert_allclose(meter.idle_power_w(seconds=1.0), [60.0, 60.0])
    with pytest.raises(ValueError, match="out of range"):
        EnergyMeter([3], backend=ReplayBackend([idle], clock))


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py not installed")
def test_no_driver_gives_clear_error():
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present on this machine")
    except pynvml.NVMLError:
        pass
    with pytest.raises(NoDeviceError, match="no NVIDIA driver"):
        EnergyMeter()


# --------------------------------------------------------------------------- the sweep
class FakeGPU:
    """A run_fn on a fake GPU: prefill costs 0.1 J/token, decode 2 J/step + 0.01 J/token/seq."""

    def __init__(self, clock: FakeClock, watts: float = 300.0, crash_at: int | None = None):
        self.clock, self.watts, self.calls, self.crash_at = clock, watts, [], crash_at
        self.extras: list[dict] = []
        self.trace = GpuTrace("FakeGPU-80GB", [0, 1e9], [70e3, 70e3], [0, 1e9], [0, 70e3 * 1e9])

    def energy_j(self, batch_size, input_tokens, output_tokens):
        return 0.1 * batch_size * input_tokens + output_tokens * (2.0 + 0.01 * batch_size)

    def __call__(self, batch_size, input_tokens, output_tokens, **extra):
        if self.crash_at is not None and len(self.calls) == self.crash_at:
            raise KeyboardInterrupt
        self.calls.append((batch_size, input_tokens, output_tokens))
        self.extras.append(extra)
        e = self.energy_j(batch_size, input_tokens, output_tokens)
        seconds = e / self.watts
        # Advance the counter by e joules on top of idle, then the clock by the run time.
        t = self.clock.t
        self.trace.energy_t = [0, t, t + seconds, 1e9]
        before = 70e3 * t + self._extra
        self._extra += e * 1e3
        self.trace.energy_mj = [0, before, 70e3 * (t + seconds) + self._extra, 70e3 * 1e9 + self._extra]
        self.clock.sleep(seconds)

    _extra = 0.0


def _meter(gpu: FakeGPU, clock: FakeClock) -> EnergyMeter:
    return EnergyMeter(backend=ReplayBackend([gpu.trace], clock), sample_power=False, clock=clock,
                       sleep=clock.sleep)


def test_profile_grid_table_and_prefill_split(tmp_path):
    clock = FakeClock(10.0)
    gpu = FakeGPU(clock)
    grid = {"batch_size": [1, 8], "input_tokens": [128], "output_tokens": [16, 64], "temperature": [0.0]}
    df = profile_grid(gpu, grid, repeats=2, warmup=1, meter=_meter(gpu, clock), out=tmp_path / "s.csv",
                      model="tiny", progress=False)
    assert len(df) == 4 and (df.gpu == "FakeGPU-80GB").all() and (df.model == "tiny").all()
    for _, r in df.iterrows():
        b, si, so = r.batch_size, r.input_tokens, r.output_tokens
        # idle power is included: 70 W during the run
        total = gpu.energy_j(b, si, so) + 70.0 * gpu.energy_j(b, si, so) / 300.0
        assert r.energy_j * b == pytest.approx(total, rel=1e-4)  # counters count whole mJ
        assert r.prefill_energy_j + r.decode_energy_j == pytest.approx(r.energy_j)
        pre = gpu.energy_j(b, si, 1) * (1 + 70 / 300)
        assert r.prefill_energy_j * b == pytest.approx(pre, rel=1e-4)  # counters count whole mJ
        assert r.n_requests == 2 * b and r.repeats == 2 and r.method == "counter"
        assert r.ttft_s < r.latency_s and r.tpot_s > 0
    assert "temperature" in df.columns
    # warm-up + 2 repeats x (full + prefill) per configuration
    assert len(gpu.calls) == 4 * (1 + 2 * 2)


def test_interrupted_sweep_resumes_without_rerunning(tmp_path):
    out = tmp_path / "sweep.csv"
    grid = [{"batch_size": b, "input_tokens": 64, "output_tokens": 8} for b in (1, 2, 4, 8)]
    clock = FakeClock(0.0)
    gpu = FakeGPU(clock, crash_at=2 * 3 + 1)  # dies inside the third configuration
    with pytest.raises(KeyboardInterrupt):
        profile_grid(gpu, grid, repeats=1, warmup=1, meter=_meter(gpu, clock), out=out, progress=False)
    saved = pd.read_csv(out)
    assert list(saved.batch_size) == [1, 2]  # nothing finished is lost
    clock2 = FakeClock(clock.t)
    gpu2 = FakeGPU(clock2)
    df = profile_grid(gpu2, grid, repeats=1, warmup=1, meter=_meter(gpu2, clock2), out=out, progress=False)
    assert sorted(df.batch_size) == [1, 2, 4, 8]
    assert sorted({c[0] for c in gpu2.calls}) == [4, 8]  # only the unfinished ones ran again
    with pytest.raises(FileExistsError):
        profile_grid(gpu2, grid, meter=_meter(gpu2, clock2), out=out, resume=False, progress=False)


def test_grid_validation():
    clock = FakeClock()
    gpu = FakeGPU(clock)
    with pytest.raises(ValueError, match="lacks"):
        profile_grid(gpu, [{"batch_size": 1}], meter=_meter(gpu, clock), progress=False)
    with pytest.raises(ValueError, match="repeats"):
        profile_grid(gpu, {"batch_size": [1], "input_tokens": [1], "output_tokens": [1]}, repeats=0,
                     meter=_meter(gpu, clock), progress=False)




def _sweep(grid, out=None, *, clock=None, **kw):
    """Run a sweep on a fresh fake GPU; returns (table, gpu)."""
    clock = clock or FakeClock(0.0)
    gpu = FakeGPU(clock)
    kw = {"repeats": 1, "warmup": 0, "progress": False, **kw}
    return profile_grid(gpu, grid, meter=_meter(gpu, clock), out=out, **kw), gpu


BASE = {"batch_size": [1], "input_tokens": [8], "output_tokens": [4]}


def test_swept_labels_are_recorded(tmp_path):
    """A grid sweeping tp and model records its own values (not the arguments' defaults)."""
    grid = {**BASE, "tp": [1, 2, 4], "model": ["A", "B"]}
    with pytest.warns(ImplausibleValueWarning, match=r"tp \* pp \* dp = \[2, 4\]"):
        df, gpu = _sweep(grid, tmp_path / "s.csv", gpu="G", pp=1)
    got = sorted(zip(df.model, df.tp, df.n_gpus))
    assert got == [("A", 1, 1), ("A", 2, 2), ("A", 4, 4), ("B", 1, 1), ("B", 2, 2), ("B", 4, 4)]
    assert (df.gpu == "G").all()
    assert {(e["model"], e["tp"]) for e in gpu.extras} == {(m, t) for m in "AB" for t in (1, 2, 4)}
    saved = pd.read_csv(tmp_path / "s.csv")
    assert sorted(saved.tp) == [1, 1, 2, 2, 4, 4]


def test_swept_alias_sets_the_label():
    """tensor_parallel_size goes to run_fn as it is and is recorded as tp (one column)."""
    with pytest.warns(ImplausibleValueWarning):
        df, gpu = _sweep({**BASE, "tensor_parallel_size": [2]})
    assert list(df.tp) == [2] and "tensor_parallel_size" not in df.columns
    assert gpu.extras == [{"tensor_parallel_size": 2}, {"tensor_parallel_size": 2}]


def test_grid_and_argument_conflict_names_both():
    with pytest.raises(ValueError, match=r"sweeps 'tp' \(values 1, 4.*argument tp=2"):
        _sweep({**BASE, "tp": [1, 2, 4]}, tp=2)
    with pytest.raises(ValueError, match=r"sweeps 'model'.*argument model='x'"):
        _sweep({**BASE, "model": ["y"]}, model="x")
    with pytest.raises(ValueError, match="'tp' and 'tensor_parallel_size' both set 'tp'"):
        _sweep({**BASE, "tp": [2], "tensor_parallel_size": [2]})
    df, _ = _sweep({**BASE, "pp": [1]}, pp=1)  # the same value is no conflict
    assert list(df.pp) == [1]


def test_dp_argument_labels_every_row_like_tp_and_pp(tmp_path):
    """profiling.md says dp comes from the arguments where the grid does not sweep it;
    profile_grid had no dp argument (TypeError)."""
    with pytest.warns(ImplausibleValueWarning, match=r"tp \* pp \* dp = \[4\]"):
        df, _ = _sweep(BASE, tmp_path / "s.csv", tp=2, dp=2)
    assert list(df.dp) == [2] and list(df.tp) == [2] and list(df.n_gpus) == [4]
    assert list(pd.read_csv(tmp_path / "s.csv").dp) == [2]
    with pytest.raises(ValueError, match=r"sweeps 'dp' \(values 1, 4.*argument dp=2"):
        _sweep({**BASE, "dp": [1, 4]}, dp=2)
    df, _ = _sweep({**BASE, "dp": [1]}, dp=1)  # the same value is no conflict
    assert list(df.dp) == [1]
    clock = FakeClock()
    gpu = FakeGPU(clock)
    for bad in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="'dp' parameter of profile_grid"):
            profile_grid(gpu, BASE, meter=_meter(gpu, clock), dp=bad, progress=False)
    assert gpu.calls == []


def test_grid_problems_are_named_at_once_before_running():
    clock = FakeClock()
    gpu = FakeGPU(clock)
    grid = [{"batch_size": 1.5, "input_tokens": "64", "output_tokens": True},
            {"batch_size": 1, "input_tokens": 8, "output_tokens": 0, "tp": 0, "model": 7},
            {"batch_size": 1, "input_tokens": 8, "output_tokens": 2, "energy_j": 1.0,
             "max_num_seqs": 8, "note": "a\nb"}]
    with pytest.raises(ValueError) as info:
        profile_grid(gpu, grid, meter=_meter(gpu, clock), progress=False)
    msg = str(info.value)
    for part in ["'batch_size' must be a whole number >= 1; got 1.5", "'input_tokens'",
                 "'output_tokens' must be a whole number >= 1; got True", "got 0",
                 "'tp' must be a whole number in [1, 100000]; got 0", "'model' must be a non-empty",
                 "column 'energy_j' is one the sweep records", "'max_num_seqs' (read as 'batch_size')",
                 "line break"]:
        assert part in msg, part
    assert gpu.calls == []
    for bad in ({**BASE, "batch_size": []}, [], "batch_size", [1, 2]):
        with pytest.raises(ValueError, match="grid"):
            profile_grid(gpu, bad, meter=_meter(gpu, clock), progress=False)
    with pytest.raises(ValueError, match="'tp' parameter of profile_grid"):
        profile_grid(gpu, BASE, meter=_meter(gpu, clock), tp=0, progress=False)


def test_canonical_name_reads_headers_as_the_schema_does():
    from energylens import schema

    try:
        from energylens.tables.headers import resolve_header
    except ImportError:
        resolve_header = schema._resolve_header
    names = [*schema.COLUMNS, *schema.ALIASES, "energy_kwh", "Latency (ms)", "tensor-parallel",
             "temperature", "max_num_seqs"]
    for name in names:
        assert canonical_name(name) == resolve_header(name)[0], name


def test_resume_key_ignores_number_types(tmp_path):
    out = tmp_path / "s.csv"
    _sweep({"batch_size": [1, 2], "input_tokens": [8], "output_tokens": [4], "temperature": [0.5]},
           out)
    grid = {"batch_size": [np.int64(1), np.float32(2.0)], "input_tokens": [np.float64(8.0)],
            "output_tokens": [np.int32(4)], "temperature": [np.float32(0.5)]}
    df, gpu = _sweep(grid, out)
    assert gpu.calls == [] and len(pd.read_csv(out)) == 2 and len(df) == 2
    same = [1, 1.0, np.int64(1), np.float32(1.0), np.uint8(1)]
    assert {normalise_value(v) for v in same} == {1}
    assert normalise_value(np.float32(0.1)) == 0.1 and normalise_value("1") == "1"
    # strings are compared as strings: a label "1" is another configuration than 1
    df, gpu = _sweep({**BASE, "prompt_set": ["1", 1, 1.0]}, tmp_path / "t.csv")
    assert len(gpu.calls) == 2 * 2 and len(df) == 2  # full + one-token run each


def test_resumed_sweep_of_another_model_measures_its_own(tmp_path):
    out = tmp_path / "s.csv"
    _sweep(BASE, out, model="A")
    df, gpu = _sweep(BASE, out, model="B")
    assert len(gpu.calls) == 2 and list(df.model) == ["B"]
    assert sorted(pd.read_csv(out).model) == ["A", "B"]


def _torn(out: Path, text: str) -> None:
    with open(out, "a", newline="") as fh:
        fh.write(text)


def test_torn_last_line_is_set_aside_not_glued(tmp_path, caplog):
    out = tmp_path / "s.csv"
    grid = {"batch_size": [1, 2, 4], "input_tokens": [8], "output_tokens": [4]}
    _sweep({**grid, "batch_size": [1]}, out)
    whole = out.read_text().splitlines()[1]
    _torn(out, whole[: len(whole) // 2])  # a crash cut the row for batch 2 in half
    with caplog.at_level(logging.WARNING, logger="energylens"):
        df, gpu = _sweep(grid, out)
    assert sorted(df.batch_size) == [1, 2, 4] and sorted(c[0] for c in gpu.calls) == [2, 2, 4, 4]
    assert f"'{out}' line 3 is incomplete" in caplog.text and ".torn" in caplog.text
    assert (tmp_path / "s.csv.torn").read_text() == whole[: len(whole) // 2] + "\n"
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert {len(r) for r in rows} == {len(rows[0])} and len(rows) == 4  # header + 3 whole rows


def test_torn_header_starts_a_new_file(tmp_path, caplog):
    out = tmp_path / "s.csv"
    out.write_text("model,gpu,t")
    with caplog.at_level(logging.WARNING, logger="energylens"):
        df, _ = _sweep(BASE, out)
    assert "line 1 is incomplete" in caplog.text and len(pd.read_csv(out)) == 1
    assert (tmp_path / "s.csv.torn").read_text() == "model,gpu,t\n"


@pytest.mark.filterwarnings("ignore::energylens.exceptions.ImplausibleValueWarning")
def test_glued_or_mislabelled_rows_are_named_before_measuring(tmp_path):
    out = tmp_path / "s.csv"
    _sweep({**BASE, "batch_size": [1, 2]}, out)
    lines = out.read_text().splitlines(keepends=True)
    glued = lines[1].rstrip("\n") + lines[2]  # what the old append made of a torn line
    out.write_text(lines[0] + glued)
    with pytest.raises(SchemaError, match=r"line 2: \d+ fields, the header has \d+") as info:
        _sweep(BASE, out)
    assert "torn" in str(info.value)
    # a row written by the old harness: the grid swept tp=2, the row says tp=1
    df, _ = _sweep({**BASE, "tp": [2]}, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text().splitlines(keepends=True)
    fields = next(csv.reader([text[1]]))
    fields[2] = "1"
    with open(tmp_path / "t.csv", "w", newline="") as fh:
        fh.write(text[0])
        csv.writer(fh, lineterminator="\n").writerow(fields)
    clock = FakeClock()
    gpu = FakeGPU(clock)
    with pytest.raises(SchemaError, match=r"line 2: the row records tp='1' but was measured with tp=2"):
        profile_grid(gpu, {**BASE, "tp": [2]}, meter=_meter(gpu, clock), out=tmp_path / "t.csv",
                     progress=False)
    assert gpu.calls == []


def test_out_must_be_a_sweep_file_with_its_columns(tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("model,gpu,tp,batch_size,input_tokens,output_tokens,energy_j\nm,H,1,1,1,1,1\n")
    before = mine.read_bytes()
    with pytest.raises(SchemaError, match="not a file written by profile_grid"):
        _sweep(BASE, mine)
    assert mine.read_bytes() == before
    out = tmp_path / "s.csv"
    _sweep(BASE, out, measure_prefill=False)
    clock = FakeClock()
    gpu = FakeGPU(clock)
    with pytest.raises(SchemaError, match="also writes.*prefill_energy_j"):
        profile_grid(gpu, {**BASE, "batch_size": [2]}, meter=_meter(gpu, clock), out=out,
                     progress=False)
    assert gpu.calls == []  # refused before measuring, not after
    with pytest.raises(IsADirectoryError):
        _sweep(BASE, tmp_path)


@pytest.mark.parametrize("content", [
    b"experiment,notes\nrun1,important result",  # a last line without its newline
    b"my only line, precious",  # one line, not a sweep's header
    b"model,gpu,tp\n1,2",  # a header of other columns
    b"PAR1\x00\x15\x04\n\xff\xfe\x00PAR1",  # a binary file (Parquet)
])
def test_a_file_that_is_not_a_sweep_file_is_refused_untouched(tmp_path, content):
    mine = tmp_path / "results.csv"
    mine.write_bytes(content)
    clock = FakeClock()
    gpu = FakeGPU(clock)
    with pytest.raises(SchemaError, match="not a file written by profile_grid|not UTF-8"):
        profile_grid(gpu, BASE, meter=_meter(gpu, clock), out=mine, progress=False)
    assert mine.read_bytes() == content
    assert not (tmp_path / "results.csv.torn").exists() and gpu.calls == []


def test_a_torn_line_of_a_sweep_file_with_bad_rows_is_left_in_place(tmp_path):
    """The file is checked whole before its torn last line is moved."""
    out = tmp_path / "s.csv"
    _sweep({**BASE, "batch_size": [1, 2]}, out)
    lines = out.read_text().splitlines(keepends=True)
    broken = lines[0] + lines[1].rstrip("\n") + lines[2] + lines[2][:10]
    out.write_text(broken)
    with pytest.raises(SchemaError, match="line 2"):
        _sweep(BASE, out)
    assert out.read_text() == broken and not (tmp_path / "s.csv.torn").exists()


def test_run_fn_failure_names_the_configuration_and_keeps_the_rows(tmp_path):
    from energylens.profile import RunFailedError

    grid = {**BASE, "batch_size": [1, 2, 4]}

    def oom_at(cap):
        clock = FakeClock(0.0)
        gpu = FakeGPU(clock)

        def run_fn(batch_size, input_tokens, output_tokens):
            if batch_size == cap:
                raise MemoryError("CUDA out of memory")
            gpu(batch_size, input_tokens, output_tokens)

        return run_fn, _meter(gpu, clock)

    run_fn, meter = oom_at(4)
    with pytest.raises(RunFailedError, match=r"configuration \{'batch_size': 4, .*"
                       r"MemoryError: CUDA out of memory.*'table' attribute") as info:
        profile_grid(run_fn, grid, meter=meter, repeats=1, warmup=0, progress=False)
    assert isinstance(info.value.__cause__, MemoryError)
    assert info.value.config["batch_size"] == 4
    assert list(info.value.table.batch_size) == [1.0, 2.0]  # nothing measured is lost
    out = tmp_path / "s.csv"
    run_fn, meter = oom_at(2)
    with pytest.raises(RunFailedError, match=str(out)):
        profile_grid(run_fn, grid, meter=meter, out=out, repeats=1, warmup=0, progress=False)
    assert list(pd.read_csv(out).batch_size) == [1]
    # on_error="skip": the failing configuration is left out, named, and tried again later
    run_fn, meter = oom_at(2)
    with pytest.warns(energylens_warning(), match=r"'batch_size': 2.*skipped"):
        df = profile_grid(run_fn, grid, meter=meter, out=out, repeats=1, warmup=0,
                          progress=False, on_error="skip")
    assert sorted(df.batch_size) == [1, 4]
    assert [f["config"]["batch_size"] for f in df.attrs["failed"]] == [2]
    assert "MemoryError" in df.attrs["failed"][0]["error"]
    assert sorted(pd.read_csv(out).batch_size) == [1, 4]
    run_fn, meter = oom_at(None)
    df = profile_grid(run_fn, grid, meter=meter, out=out, repeats=1, warmup=0, progress=False)
    assert sorted(df.batch_size) == [1, 2, 4] and df.attrs["failed"] == []
    with pytest.raises(ValueError, match="on_error"):
        profile_grid(run_fn, grid, meter=meter, progress=False, on_error="ignore")


def energylens_warning():
    from energylens.exceptions import EnergyLensWarning

    return EnergyLensWarning


def test_failed_append_leaves_whole_lines_and_reports_the_row(tmp_path, monkeypatch):
    out = tmp_path / "s.csv"
    grid = {"batch_size": [1, 2, 4], "input_tokens": [8], "output_tokens": [4]}
    real_write = os.write
    calls = []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 2:  # the second row: half of it is written, then the disk is full
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(sweepfile.os, "write", full_disk)
    with pytest.raises(OSError, match=r"left as it was. The row: model,FakeGPU-80GB,1,1,1,2"):
        _sweep(grid, out)
    monkeypatch.setattr(sweepfile.os, "write", real_write)
    assert out.read_text().endswith("\n") and len(pd.read_csv(out)) == 1
    df, gpu = _sweep(grid, out)
    assert sorted(df.batch_size) == [1, 2, 4] and sorted({c[0] for c in gpu.calls}) == [2, 4]


def test_removed_out_file_reports_the_row(tmp_path):
    out = tmp_path / "s.csv"

    def run_fn(batch_size, input_tokens, output_tokens):
        out.unlink(missing_ok=True)  # the file goes away while the configuration runs
        gpu(batch_size, input_tokens, output_tokens)

    clock = FakeClock(0.0)
    gpu = FakeGPU(clock)
    with pytest.raises(OSError, match=r"Could not append the measured row .* The row: model,"):
        profile_grid(run_fn, BASE, meter=_meter(gpu, clock), out=out, repeats=1, warmup=0,
                     progress=False)


def test_repeated_configurations_are_measured_once():
    df, gpu = _sweep([{"batch_size": b, "input_tokens": 8, "output_tokens": 4}
                      for b in (1, 1.0, np.int64(1), 2)])
    assert sorted(df.batch_size) == [1, 2] and len(gpu.calls) == 4


def test_unusable_measurement_warns_and_is_not_recorded(tmp_path):
    clock = FakeClock(0.0)
    gpu = FakeGPU(clock)

    def run_fn(batch_size, input_tokens, output_tokens):
        if batch_size == 2:
            return  # takes no time: the counter does not move
        gpu(batch_size, input_tokens, output_tokens)

    out = tmp_path / "s.csv"
    with pytest.warns(ImplausibleValueWarning, match="not recorded"):
        df = profile_grid(run_fn, {**BASE, "batch_size": [1, 2]}, meter=_meter(gpu, clock),
                          out=out, repeats=1, warmup=0, progress=False)
    assert list(df.batch_size) == [1] and len(pd.read_csv(out)) == 1
    with pytest.warns(ImplausibleValueWarning), pytest.raises(SchemaError, match="no configuration"):
        profile_grid(run_fn, {**BASE, "batch_size": [2]}, meter=_meter(gpu, clock),
                     repeats=1, warmup=0, progress=False)


def test_noisy_one_token_run_gives_nan_tpot_not_a_failure():
    clock = FakeClock(0.0)
    gpu = FakeGPU(clock)

    def run_fn(batch_size, input_tokens, output_tokens):
        gpu(batch_size, input_tokens, output_tokens)
        if output_tokens == 1:
            clock.sleep(5.0)  # the prefill run stalls longer than the whole generation

    df = profile_grid(run_fn, BASE, meter=_meter(gpu, clock), repeats=1, warmup=0, progress=False)
    assert np.isnan(df.tpot_s.iloc[0]) and df.ttft_s.iloc[0] > df.latency_s.iloc[0]


def test_schema_failure_keeps_the_rows(monkeypatch):
    from energylens.profile import grid as grid_module

    def reject(table, **_):
        raise SchemaError("Invalid profiling table: 1 problem.")

    monkeypatch.setattr(grid_module, "validate", reject)
    with pytest.raises(SchemaError, match="'table' attribute") as info:
        _sweep(BASE)
    assert list(info.value.table.batch_size) == [1.0]


def test_progress_goes_to_the_logger_not_to_print(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="energylens"):
        _sweep({**BASE, "batch_size": [1, 2]}, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert "[2/2]" in caplog.text


def test_meter_rejects_repeated_or_missing_gpus():
    clock = FakeClock()
    backend = ReplayBackend([counter_trace("G0", 60.0), counter_trace("G1", 60.0)], clock)
    with pytest.raises(ValueError, match="more than once"):
        EnergyMeter([0, 0], backend=backend)
    with pytest.raises(ValueError, match=r"GPU indices in \[0, 1\]"):
        EnergyMeter([], backend=backend)
    with pytest.raises(ValueError, match="not whole"):
        EnergyMeter([0.5], backend=backend)


def test_idle_power_with_no_reading_is_an_error():
    clock = FakeClock(0.0)
    dead = GpuTrace("dead", [0, 100], [60e3, 60e3], fail_between=[(0, 100)])
    meter = EnergyMeter(backend=ReplayBackend([counter_trace("G0", 60.0), dead], clock),
                        clock=clock, sleep=clock.sleep)
    with pytest.raises(NoDeviceError, match=r"No power reading of GPU 1 \(dead\) succeeded"):
        meter.idle_power_w(seconds=1.0)


def test_docstring_examples():
    import doctest

    from energylens.profile import configs, grid, sweepfile

    for mod in (configs, grid, sweepfile):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__


_NO_TORCH = (importlib.util.find_spec("torch") is None
             or importlib.util.find_spec("transformers") is None)


def test_hf_run_fn_checks_before_importing():
    from energylens.profile import make_hf_run_fn

    with pytest.raises(ValueError, match="Unknown preset 'llama-7b'; presets are"):
        make_hf_run_fn("llama-7b")
    with pytest.raises(ValueError, match="'dtype' parameter"):
        make_hf_run_fn("tiny", dtype="fp8")
    if _NO_TORCH:
        with pytest.raises(BackendUnavailableError, match="pip install"):
            make_hf_run_fn("tiny", device="cpu")


@pytest.mark.skipif(_NO_TORCH, reason="torch and transformers are not installed "
                                      "(pip install 'energylens[profile]')")
def test_hf_run_fn_on_cpu():
    from energylens.profile import make_hf_run_fn

    run = make_hf_run_fn("tiny", dtype="float32", device="cpu")
    assert run(batch_size=2, input_tokens=8, output_tokens=3) == (2, 3)
    assert run(batch_size=1, input_tokens=5, output_tokens=1, temperature=0.0) == (1, 1)
