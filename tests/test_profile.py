"""The profiling harness, without a GPU: replayed NVML traces and a fake clock."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pandas as pd
import pytest

from energylens.exceptions import NoDeviceError
from energylens.profile import (
    EnergyMeter,
    GpuTrace,
    ReplayBackend,
    counter_delta_mj,
    integrate_power,
    profile_grid,
)
from energylens.profile.backends import COUNTER_MODULUS_MJ


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
        self.trace = GpuTrace("FakeGPU-80GB", [0, 1e9], [70e3, 70e3], [0, 1e9], [0, 70e3 * 1e9])

    def energy_j(self, batch_size, input_tokens, output_tokens):
        return 0.1 * batch_size * input_tokens + output_tokens * (2.0 + 0.01 * batch_size)

    def __call__(self, batch_size, input_tokens, output_tokens, **extra):
        if self.crash_at is not None and len(self.calls) == self.crash_at:
            raise KeyboardInterrupt
        self.calls.append((batch_size, input_tokens, output_tokens))
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


@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
                    reason="torch and transformers are not installed (pip install 'energylens[profile]')")
def test_hf_run_fn_on_cpu():
    from energylens.profile import make_hf_run_fn

    run = make_hf_run_fn("tiny", dtype="float32", device="cpu")
    run(batch_size=2, input_tokens=8, output_tokens=3)
