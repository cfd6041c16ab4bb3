"""The physics-based simulator: sanity of its physics and of its table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.core.catalogue import (
    configuration_fit,
    gpu_spec,
    gpu_table,
    model_spec,
    register_gpus,
    reset_catalogue,
)
from energylens.exceptions import CatalogueError
from energylens.simulate import GPU_SPECS, MODEL_SPECS, SimulatorOracle, simulate_profiles


@pytest.fixture(scope="module")
def table():
    return simulate_profiles(noise=0.0)


def _pick(df, **kw):
    m = np.ones(len(df), dtype=bool)
    for k, v in kw.items():
        m &= df[k].to_numpy() == v
    return df[m]


def test_default_table_is_canonical_and_consistent(table):
    assert len(table) > 300
    again = energylens.read_profiles(table)
    assert len(again) == len(table)
    np.testing.assert_allclose(table.prefill_energy_j + table.decode_energy_j, table.energy_j,
                               rtol=1e-12)
    assert (table.n_gpus == table.tp * table.pp * table.dp).all()
    assert (table.source == "simulator").all() and (table.batch_kind == "cap").all()
    assert table.energy_per_output_token_j.between(1e-4, 1e3).all()


def test_defaults_are_small():
    # (its speed is not asserted here: a wall-clock bound fails on a busy machine)
    df = simulate_profiles()
    assert 300 <= len(df) <= 1000


def test_energy_grows_with_input_and_output_length(table):
    base = dict(model="Llama-3.1-8B", gpu="H100-SXM", tp=2, pp=1, batch_size=32.0)
    rows = _pick(table, **base).set_index(["input_tokens", "output_tokens"])["energy_j"]
    assert rows.loc[(1024.0, 64.0)] > rows.loc[(128.0, 64.0)]
    assert rows.loc[(1024.0, 512.0)] > rows.loc[(1024.0, 64.0)]


def test_decode_energy_per_token_falls_with_batch(table):
    rows = _pick(table, model="Llama-3.1-8B", gpu="A100-80GB", tp=1, pp=1, input_tokens=128.0,
                 output_tokens=512.0).sort_values("batch_size")
    per_tok = rows.decode_energy_j / rows.output_tokens
    assert len(rows) >= 3
    assert np.all(np.diff(per_tok.to_numpy()) < 0)


def test_tensor_parallelism_adds_communication_energy():
    cfg = pd.DataFrame({"model": ["Llama-3.1-8B"] * 2, "gpu": ["H100-SXM"] * 2, "tp": [1, 4],
                        "pp": [1, 1], "batch_size": [32.0] * 2, "input_tokens": [512.0] * 2,
                        "output_tokens": [256.0] * 2})
    e = SimulatorOracle().fit(cfg).predict(cfg)
    assert e[1] > e[0]  # four GPUs do the same work plus all-reduces
    # An infinitely fast, latency-free link removes the overhead's communication part: a
    # registered copy of the H100 row with such a link.
    free = gpu_table().loc[["H100-SXM"]].assign(name="H100-free-link", aliases="",
                                                link_bw_bytes_s=1e30, link_latency_s=0.0)
    register_gpus(free)
    try:
        e_free = SimulatorOracle().fit(cfg).predict(cfg.assign(gpu="H100-free-link"))
    finally:
        reset_catalogue()
    assert e_free[0] == pytest.approx(e[0])
    assert e_free[1] < e[1]


def test_infeasible_configurations_absent():
    df = simulate_profiles(models=["Llama-3.1-70B"], gpus=["L4", "H100-SXM"], tp=(1, 2, 4, 8),
                           pp=(1,), batch_size=(8,), input_tokens=(512,), output_tokens=(128,))
    assert not ((df.gpu == "L4") & (df.tp == 1)).any()  # 141 GB of weights on one 24 GB GPU
    assert not ((df.gpu == "H100-SXM") & (df.tp == 1)).any()
    assert ((df.gpu == "H100-SXM") & (df.tp >= 2)).any()
    with pytest.raises(ValueError, match="No feasible configuration"):
        simulate_profiles(models=["Llama-3.1-70B"], gpus=["L4"], tp=(1,), pp=(1,))
    with pytest.raises(ValueError, match="Unknown model"):
        simulate_profiles(models=["GPT-9"])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="tp must hold integers"):
        simulate_profiles(tp=(1.5,))
    with pytest.raises(ValueError, match="batch_size"):
        simulate_profiles(batch_size=(0,))
    with pytest.raises(ValueError, match="noise"):
        simulate_profiles(noise=-0.1)
    with pytest.raises(ValueError, match=r"'noise' parameter .* range \[0.0, 1.0\]"):
        simulate_profiles(noise=5)  # would throw rows out of the physical ranges
    with pytest.raises(ValueError, match="precision"):
        simulate_profiles(precision="int3")
    with pytest.raises(ValueError, match="Unknown GPU"):
        simulate_profiles(gpus=["TPU-v9"])


def test_feasibility_rules():
    df = simulate_profiles(models=["Llama-3.2-3B", "Llama-3.1-8B"], gpus=["L4"], tp=(1, 3, 4),
                           pp=(1,), batch_size=(8, 256), input_tokens=(4096,),
                           output_tokens=(1024,), noise=0.0)
    assert not (df.tp == 3).any()  # 3 divides the 24 heads of Llama-3.2-3B but not its 8 KV heads
    # Llama-3.1-8B: 16 GB of weights fit one 24 GB L4 at batch 8. The KV cache of a cap of 256
    # sequences (about 155 GB at their mean context of 4,608 tokens) does not fit, on one GPU
    # or four: a server then runs fewer at once (vLLM's scheduler does not fail), so the cap
    # runs memory-limited, at the 9 (one L4) or 116 (four) sequences the memory holds. (This
    # test once required the cap of 256 to be refused.)
    eight = df[df.model == "Llama-3.1-8B"].set_index(["tp", "batch_size"])
    assert eight.loc[(1, 8.0), "running_batch"] == 8
    assert eight.loc[(1, 256.0), "running_batch"] == 9
    assert eight.loc[(4, 256.0), "running_batch"] == 116
    # ... and is simulated at that batch: more sequences per decode step, less energy each.
    assert eight.loc[(4, 256.0), "energy_j"] < eight.loc[(1, 256.0), "energy_j"]
    with pytest.raises(ValueError, match="No feasible"):
        simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], pp=(17,))


def test_idle_power_of_pipeline_stages_and_tp_speedup():
    cfg = pd.DataFrame({"model": ["Llama-3.1-8B"] * 3, "gpu": ["H100-SXM"] * 3,
                        "tp": [1, 1, 2], "pp": [1, 2, 1], "batch_size": [1.0] * 3,
                        "input_tokens": [512.0] * 3, "output_tokens": [256.0] * 3})
    out = energylens.simulate.simulate_configurations(cfg)
    # At batch 1 a second stage does not shorten a decode step, it only idles half the time:
    # same time per token or worse, more energy.
    assert out.tpot_s.iloc[1] >= out.tpot_s.iloc[0]
    assert out.energy_j.iloc[1] > out.energy_j.iloc[0]
    # A second tensor-parallel GPU does shorten it (half the weights each), not by 2x.
    assert 0.5 * out.tpot_s.iloc[0] < out.tpot_s.iloc[2] < out.tpot_s.iloc[0]
    # Mean power: the configuration's GPUs draw between idle and maximum.
    g = GPU_SPECS["H100-SXM"]
    n = cfg.tp * cfg.pp
    assert ((out.power_w > n * g.idle_w) & (out.power_w < n * g.max_w)).all()


def test_seeds():
    a = simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=3)
    b = simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=3)
    c = simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"], seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.energy_j, c.energy_j)
    ratio = a.energy_j / simulate_profiles(models=["Llama-3.2-1B"], gpus=["H100-SXM"],
                                           noise=0.0).energy_j
    assert 0.005 < np.std(np.log(ratio)) < 0.05


def test_finite_pool_littles_law_and_dp():
    df = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1, 2), pp=(1,),
                           dp=(1, 2, 4), batch_size=(64, 256), input_tokens=(512,),
                           output_tokens=(256,), n_requests=(64, 512), seed=5)
    per_replica = df.n_requests / df.dp
    little = per_replica * df.latency_s / df.duration_s
    np.testing.assert_allclose(little, df.running_batch, rtol=0.05)
    assert (df.running_batch < df.batch_size).all()
    small = df[(df.n_requests == 64) & (df.dp == 4) & (df.batch_size == 256)]
    assert (small.running_batch < 0.25 * small.batch_size).all()
    assert (df.n_gpus == df.tp * df.dp).all()
    np.testing.assert_allclose(df.run_energy_j / df.n_requests, df.energy_j, rtol=1e-9)
    np.testing.assert_allclose(df.power_w * df.duration_s, df.run_energy_j, rtol=1e-9)
    # A pool much larger than the cap keeps the cap busy most of the time.
    big = df[(df.n_requests == 512) & (df.dp == 1) & (df.batch_size == 64)]
    assert (big.running_batch > 0.8 * big.batch_size).all()
    # The same requests served with more replicas each take no longer.
    by_dp = df[(df.n_requests == 512) & (df.tp == 1) & (df.batch_size == 256)]
    assert np.all(np.diff(by_dp.sort_values("dp").duration_s.to_numpy()) < 0)


def test_saturated_rows_run_at_the_cap(table):
    # The cap is full, or as full as the KV memory allows (the catalogue's rule): a cap the
    # KV memory cannot hold runs memory-limited. (Every row once ran at its cap: such caps
    # were refused.)
    served = [configuration_fit(model_spec(r.model), gpu_spec(r.gpu), r.tp, r.pp, r.batch_size,
                                r.input_tokens, r.output_tokens, precision=r.precision)
              for r in table.itertuples()]
    np.testing.assert_array_equal(table.running_batch, [f.running_batch for f in served])
    limited = np.array([f.memory_limited for f in served])
    assert limited.any() and (table.running_batch[~limited] == table.batch_size[~limited]).all()
    assert (table.running_batch[limited] < table.batch_size[limited]).all()
    assert table[["n_requests", "duration_s", "run_energy_j"]].isna().all().all()
    assert (table.ttft_s < table.latency_s).all()
    np.testing.assert_allclose(table.latency_s, table.ttft_s + table.output_tokens * table.tpot_s,
                               rtol=1e-10)
    # Power x time = energy: the cohort's GPUs over the cohort's time, per running request.
    np.testing.assert_allclose(table.power_w * table.latency_s / (table.running_batch * table.dp),
                               table.energy_j, rtol=1e-10)


def test_saturated_rows_prefilled_in_several_passes_keep_littles_law():
    """128 prompts of 1,024 tokens take 16 passes of 8,192 tokens: every request waits for all
    of them, and the running batch, latency and power agree."""
    df = simulate_profiles(models=["Llama-3.1-70B"], gpus=["A100-80GB"], tp=[8], pp=[1],
                           batch_size=[128], input_tokens=[1024], output_tokens=[64], noise=0.0)
    r = df.iloc[0]
    assert r.running_batch == 128
    assert r.power_w * r.latency_s / (r.running_batch * r.dp) == pytest.approx(r.energy_j,
                                                                              rel=1e-10)
    comp = SimulatorOracle().fit(df).predict_components(df).iloc[0]
    cohort_s = comp.static_j * 128 / (8 * GPU_SPECS["A100-80GB"].idle_w)
    assert r.latency_s == pytest.approx(cohort_s, rel=1e-10)


def test_precision_is_read_from_the_model_name():
    df = simulate_profiles(models=["Llama-3.1-8B-FP8", "Llama-3.1-8B"], gpus=["H100-SXM"],
                           tp=[1], pp=[1], batch_size=[8], input_tokens=[512],
                           output_tokens=[128], noise=0.0)
    fp8, bf16 = (df[df.precision == p].iloc[0] for p in ("fp8", "bf16"))
    assert fp8.model == bf16.model == "Llama-3.1-8B"
    assert fp8.energy_j < 0.8 * bf16.energy_j  # half the weight bytes, memory-bound decode
    # The oracle reads a name's precision as the table does.
    cfg = df[["model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens"]].assign(
        model=["Llama-3.1-8B-FP8", "Llama-3.1-8B"])
    np.testing.assert_allclose(SimulatorOracle().fit(cfg).predict(cfg), df.energy_j, rtol=1e-12)
    # An explicit precision applies to every model; a bad one is named.
    one = simulate_profiles(models=["Llama-3.1-8B-FP8"], gpus=["H100-SXM"], tp=[1], pp=[1],
                            batch_size=[8], input_tokens=[512], output_tokens=[128],
                            noise=0.0, precision="bf16")
    assert one.energy_j.iloc[0] == pytest.approx(bf16.energy_j)
    with pytest.raises(ValueError, match="Column 'precision'.*rows \\[1\\].*'int3'"):
        energylens.simulate.simulate_configurations(cfg.assign(precision=["fp8", "int3"]))


def test_simulator_and_candidate_grid_agree_on_feasibility():
    models = ["Llama-3.1-405B-FP8", "Llama-3.1-405B", "Llama-3.1-70B-FP8", "Llama-3.1-70B",
              "Llama-3.1-8B", "Mixtral-8x7B", "Qwen3-30B-A3B"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cand = energylens.candidate_grid(model=models, gpu=["H100-SXM", "A100-40GB", "L4"],
                                         tp=(1, 2, 4, 8), batch_size=(1, 64, 256),
                                         input_tokens=(512, 4096), output_tokens=256)
    sim = energylens.simulate.simulate_configurations(cand)
    assert cand.feasible.any() and not cand.feasible.all()
    np.testing.assert_array_equal(sim.reason == "", cand.feasible)
    big = (cand.model == "Llama-3.1-405B-FP8") & (cand.gpu == "H100-SXM") & (cand.tp == 8) \
        & (cand.batch_size == 1)
    assert cand[big].feasible.all() and sim[big].energy_j.notna().all()
    e = SimulatorOracle().fit(cand).predict(cand)
    np.testing.assert_array_equal(np.isfinite(e), cand.feasible)
    df = simulate_profiles(models=["Llama-3.1-405B-FP8"], gpus=["H100"], tp=[8], pp=[1],
                           batch_size=[1], noise=0.0)
    assert (df.precision == "fp8").all() and len(df) == 4


def test_request_pools_split_over_replicas_and_repeats_are_refused():
    kw = dict(models=["Llama-3.2-1B"], gpus=["H100-SXM"], tp=[1], pp=[1], batch_size=[8],
              input_tokens=[128], output_tokens=[64])
    with pytest.raises(ValueError, match=r"n_requests must split evenly.*n_requests=3 with dp=2"):
        simulate_profiles(**kw, dp=[2], n_requests=[3])
    with pytest.raises(ValueError, match=r"n_requests=5 with dp=2"):
        simulate_profiles(**kw, dp=[1, 2], n_requests=[4, 5])
    df = simulate_profiles(**kw, dp=[2], n_requests=[4, 6])
    assert sorted(df.n_requests) == [4, 6]  # as asked, never rounded
    cfg = pd.DataFrame({"model": ["Llama-3.2-1B"], "gpu": ["L4"], "tp": [1], "dp": [2],
                        "batch_size": [8.0], "input_tokens": [128.0], "output_tokens": [64.0],
                        "n_requests": [3.0]})
    with pytest.raises(ValueError, match=r"Row 0: n_requests=3 does not split evenly over dp=2"):
        energylens.simulate.simulate_configurations(cfg)
    with pytest.raises(ValueError, match=r"batch_size must hold whole numbers with n_requests"):
        simulate_profiles(**{**kw, "batch_size": [1.5]}, n_requests=[100])
    with pytest.raises(ValueError, match=r"Row 0: with n_requests, batch_size .* whole"):
        energylens.simulate.simulate_configurations(cfg.assign(n_requests=4.0, batch_size=1.5))
    for arg, value, match in [
            ("batch_size", [8, 8.0], r"batch_size repeats a value: 8.0 is there more than once"),
            ("tp", [1, 1], r"tp repeats a value"),
            ("models", ["Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct"],
             r"models repeats a value: 'Llama-3.2-1B' and 'meta-llama/Llama-3.2-1B-Instruct' are "
             r"both the catalogue's model Llama-3.2-1B"),
            ("gpus", ["H100", "H100-SXM"], r"gpus repeats a value: 'H100' and 'H100-SXM'"),
            ("gpus", ["H100-SXM", "h100 sxm"], r"gpus repeats a value")]:
        with pytest.raises(ValueError, match=match):
            simulate_profiles(**{**kw, arg: value})


def test_noise_limit_is_the_command_lines():
    """``energylens simulate --noise`` refuses what simulate_profiles refuses (the parser
    keeps its own copy of the limit so that --help does not import pandas)."""
    from energylens.cli import parser
    from energylens.simulate import table

    assert parser.MAX_NOISE == table.MAX_NOISE
    df = simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], noise=table.MAX_NOISE)
    assert len(df) and (df["energy_j"] > 0).all()


@pytest.mark.parametrize("kw, match", [
    (dict(seed=-1), "'seed' parameter"), (dict(seed=1.5), "'seed' parameter"),
    (dict(noise=None), "'noise' parameter"), (dict(noise=float("nan")), "'noise' parameter"),
    (dict(max_rows="5"), "'max_rows' parameter"), (dict(max_rows=2.7), "'max_rows' parameter"),
    (dict(models=[]), "models must name at least one model"),
    (dict(gpus=[]), "gpus must name at least one GPU"),
    (dict(models=[None]), "models must hold non-empty names"),
    (dict(tp=[True]), "tp must hold numbers"),
    (dict(precision="int3"), "precision must be one of"),
    (dict(workload=None), "'workload' parameter"),
])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        simulate_profiles(**{"models": ["Llama-3.2-1B"], "gpus": ["H100-SXM"], **kw})


def test_hybrid_attention_flops_count_attention_layers_only():
    from energylens.core.catalogue import model_spec
    from energylens.simulate.physics import _MFU_PREFILL, _Physics

    m, g = model_spec("NVIDIA-Nemotron-Nano-12B-v2"), gpu_spec("H100-SXM")
    assert m.attn_layers == 6 and m.layers == 62
    ph = _Physics(m, g, 1, 1, 2.0)
    si, n = 8192.0, 4.0  # compute-bound: four long prompts, one GPU, no pipeline
    flops = n * (2 * m.active_b * 1e9 * si + 2 * 6 * m.heads * m.head_dim * si**2)
    time, _ = ph.prefill(si, n)
    assert float(time) == pytest.approx(flops / (g.flops * _MFU_PREFILL), rel=1e-12)


def test_module_examples_run():
    import doctest

    from energylens.simulate import oracle, table

    attempted = 0
    for mod in (table, oracle):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__
        attempted += res.attempted
    assert attempted >= 4


def test_oracle_matches_noise_free_table(table):
    sample = table.sample(40, random_state=0)
    oracle = SimulatorOracle().fit(sample)
    np.testing.assert_allclose(oracle.predict(sample), sample.energy_j, rtol=1e-10)
    comp = oracle.predict_components(sample)
    assert list(comp.columns) == ["prefill_j", "decode_j", "static_j"]
    np.testing.assert_allclose(comp.sum(axis=1), sample.energy_j, rtol=1e-10)
    # Static energy: every GPU of the replica at idle power while a cohort of `cap` requests
    # (the running batch, where the cap is memory-limited) is served, from the first prefill
    # chunk (at most one TTFT before the mean request starts) to the last token.
    idle = sample.gpu.map(lambda g: GPU_SPECS[g].idle_w)
    cohort_s = comp.static_j * sample.running_batch / (sample.tp * sample.pp * idle)
    assert (cohort_s >= sample.latency_s * (1 - 1e-12)).all()
    assert (cohort_s <= (sample.latency_s + sample.ttft_s) * (1 + 1e-12)).all()
    assert (comp > 0).all().all()


def test_oracle_on_pooled_rows_in_any_order():
    df = simulate_profiles(models=["Llama-3.1-8B", "Llama-3.2-1B"], gpus=["H100-SXM"],
                           tp=(1, 2), pp=(1,), dp=(1, 2), batch_size=(16, 128),
                           input_tokens=(256,), output_tokens=(128,), n_requests=(48, 300),
                           noise=0.0, max_rows=20, seed=2)
    shuffled = df.sample(frac=1.0, random_state=1)
    oracle = SimulatorOracle().fit(df)
    np.testing.assert_allclose(oracle.predict(shuffled), shuffled.energy_j, rtol=1e-10)
    comp = oracle.predict_components(shuffled)
    np.testing.assert_allclose(comp.sum(axis=1), shuffled.energy_j, rtol=1e-10)
    # Static energy over the whole run: every GPU of every replica at idle power.
    idle = df.gpu.map(lambda g: GPU_SPECS[g].idle_w)
    np.testing.assert_allclose(oracle.predict_components(df).static_j * df.n_requests,
                               df.n_gpus * idle * df.duration_s, rtol=1e-10)


def test_oracle_flags_infeasible_and_checks_input():
    cfg = pd.DataFrame({"model": ["Llama-3.1-70B", "Llama-3.1-8B"], "gpu": ["L4", "L4"],
                        "tp": [1, 1], "batch_size": [8.0, 8.0], "input_tokens": [512.0, 512.0],
                        "output_tokens": [128.0, 128.0]})
    oracle = SimulatorOracle()
    with pytest.raises(energylens.NotFittedError):
        oracle.predict(cfg)
    e = oracle.fit(cfg).predict(cfg)
    assert np.isnan(e[0]) and e[1] > 0
    reason = energylens.simulate.simulate_configurations(cfg)["reason"]
    assert "GB per GPU" in reason.iloc[0] and reason.iloc[1] == ""
    with pytest.raises(ValueError, match="lacks the columns"):
        SimulatorOracle().fit(cfg.drop(columns="gpu"))
    with pytest.raises(ValueError, match="precision"):
        SimulatorOracle(precision="int3").fit(cfg)
    # fp8 halves the bytes: less decode energy than bf16 (memory-bound decode).
    fp8 = SimulatorOracle(precision="fp8").fit(cfg).predict(cfg)
    assert fp8[1] < e[1]
    per_row = SimulatorOracle().fit(cfg).predict(cfg.assign(precision=["bf16", "fp8"]))
    assert per_row[1] == pytest.approx(fp8[1])


def test_energylens_model_fits_simulator_under_five_percent():
    df = simulate_profiles(seed=7)  # 2% noise
    for _, g in df.groupby(["model", "gpu"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = energylens.EnergyLensModel().fit(g)
        assert 100 * np.mean(np.abs(m.predict(g) / g.energy_j - 1)) < 5


def test_specs_are_complete():
    assert {"A100-40GB", "A100-80GB", "H100-SXM", "H200", "L4"} <= set(GPU_SPECS)
    assert len(MODEL_SPECS) >= 5
    sizes = sorted(m.params_b for m in MODEL_SPECS.values())
    assert sizes[0] <= 1.5 and sizes[-1] >= 70


def test_demo_table_is_what_the_script_makes():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv"
    df = energylens.read_profiles(path)
    assert 500 <= len(df) <= 2000
    assert df.model.nunique() >= 3 and df.gpu.nunique() >= 3
    assert set(df.tp) >= {1, 2, 4, 8} and set(df.pp) >= {1, 2, 4}
    assert (df.dp > 1).any() and (df.running_batch < df.batch_size).any()


def test_prediction_interval_coverage_on_simulator():
    train = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], seed=1, noise=0.03)
    test = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], seed=2, noise=0.03)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = energylens.EnergyLensModel().fit(train)
    pi = m.predict_interval(test, level=0.9)
    coverage = ((test.energy_j >= pi["lower"]) & (test.energy_j <= pi["upper"])).mean()
    assert 0.8 <= coverage <= 0.97  # nominal 0.9; the form is an approximation of the simulator


def test_simulator_reads_the_catalogue():
    # The simulator's views hold the catalogue's rows, read-only, and nothing else.
    assert set(GPU_SPECS) == set(gpu_table().index)
    assert GPU_SPECS["H100-SXM"] == gpu_spec("NVIDIA H100 80GB HBM3")
    with pytest.raises(TypeError):
        GPU_SPECS["H100-SXM"] = GPU_SPECS["L4"]  # type: ignore[index]
    assert MODEL_SPECS["Mixtral-8x7B"].active_b == 12.9
    # Any catalogue name is accepted, and the table names it as the catalogue does.
    df = simulate_profiles(models=["meta-llama/Meta-Llama-3.1-8B-Instruct"],
                           gpus=["NVIDIA H100 80GB HBM3", "B200"], tp=(1,), pp=(1,),
                           batch_size=(8,), input_tokens=(512,), output_tokens=(64,), noise=0.0)
    assert sorted(df.gpu) == ["B200", "H100-SXM"] and set(df.model) == {"Llama-3.1-8B"}
    b200, h100 = df.sort_values("gpu").energy_j.to_numpy()
    assert b200 < h100  # more bandwidth and FLOP/s for the same work
    # A GPU whose throughput the catalogue leaves empty cannot be simulated, and says why.
    with pytest.raises(CatalogueError, match=r"A10G.*bf16_flop_s.*register_gpus"):
        simulate_profiles(gpus=["A10G"])


def test_registered_gpu_is_simulated():
    row = gpu_table().loc[["L4"]].assign(name="L4-double", aliases="", memory_bw_bytes_s=0.6e12)
    register_gpus(row)
    try:
        cfg = pd.DataFrame({"model": ["Llama-3.1-8B"] * 2, "gpu": ["L4", "L4-double"],
                            "tp": [1, 1], "batch_size": [8.0] * 2, "input_tokens": [512.0] * 2,
                            "output_tokens": [256.0] * 2})
        out = energylens.simulate.simulate_configurations(cfg)
    finally:
        reset_catalogue()
    # Memory-bound decode: twice the bandwidth, almost half the time per token.
    assert 0.45 < out.tpot_s.iloc[1] / out.tpot_s.iloc[0] < 0.6


@pytest.mark.slow
def test_demo_table_regenerates_byte_identical():
    """data/make_demo.py reproduces the committed demo table exactly (specs unchanged)."""
    import importlib.util
    import io
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_demo", root / "data" / "make_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    buf = io.StringIO()
    mod.make().to_csv(buf, index=False, float_format="%.6g")
    assert buf.getvalue() == (root / "data" / "demo_profiles.csv").read_text()
