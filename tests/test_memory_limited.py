"""A batch cap larger than the KV memory holds runs memory-limited, it is not infeasible.

A cap (vLLM's ``max_num_seqs``) is the most sequences a server may run at once. Where their KV
cache does not fit beside the weights, the scheduler runs fewer; the server does not fail.
The catalogue's one rule (``energylens.core.catalogue.rules``) refuses a configuration only
when its weights and one sequence's KV cache do not fit, and gives the running batch of the
others, ``min(cap, KV capacity)``; the grid, selection and the simulator share it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import energylens
from energylens import EnergyLensModel, candidate_grid, select_config, simulate_profiles
from energylens.core import catalogue as cat
from energylens.core.catalogue import gpu_spec, model_spec
from energylens.selection.grid import memory_fits, memory_reasons
from energylens.simulate import simulate_configurations

#: Llama-3.1-8B in bf16 on one H100 (80 GB): 16.06 GB of weights, 128 KiB of KV cache per
#: token; prompts of 4,096 and answers of 1,024 tokens, a mean context of 4,608.
KV = 32 * 8 * 128 * 2 * 2
CAPACITY = math.floor((0.9 * 80e9 - 8.03e9 * 2) / (4608 * KV))  # 92 sequences


def _quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a, **k)


# --- the rule -------------------------------------------------------------------------------

def test_the_cap_never_makes_a_configuration_infeasible():
    fit = cat.memory_fit(weight_bytes=16e9, kv_bytes_per_token=KV, batch=4096,
                         input_tokens=4096, output_tokens=1024, gpus=1, memory_gb=80)
    assert fit.fits and fit.reason == "" and fit.memory_limited
    assert fit.capacity == math.floor(56e9 / (4608 * KV)) and fit.running_batch == fit.capacity
    assert "runs 92 of its cap of 4096 sequences" in fit.note()
    assert "GB per GPU" in fit.note() and "90% of 80 GB" in fit.note()
    small = cat.memory_fit(weight_bytes=16e9, kv_bytes_per_token=KV, batch=64, input_tokens=4096,
                           output_tokens=1024, gpus=1, memory_gb=80)
    assert small.fits and not small.memory_limited and small.running_batch == 64
    assert small.note() == ""
    # memory_reason keeps its signature: the batch no longer decides.
    assert cat.memory_reason(weight_bytes=16e9, kv_bytes_per_token=KV, batch=1e6, tokens=5120,
                             gpus=1, memory_gb=80) == ""


def test_weights_and_one_sequence_that_do_not_fit_are_refused_with_the_numbers():
    # the weights alone: 141 GB on one 24 GB L4
    why = cat.feasibility_reason(model_spec("Llama-3.1-70B"), gpu_spec("L4"), 1, 1, 8, 512, 128)
    assert why.startswith("needs 141.4 GB per GPU for weights and KV cache") and "90% of 24 GB" in why
    fit = cat.configuration_fit(model_spec("Llama-3.1-70B"), gpu_spec("L4"), 1, 1, 8, 512, 128)
    assert not fit.fits and not fit.memory_limited and math.isnan(fit.running_batch)
    # the weights fit, but not with one sequence at its full length (16 GB + 7.9 GB > 21.6 GB)
    fit = cat.memory_fit(weight_bytes=16e9, kv_bytes_per_token=KV, batch=1, input_tokens=60_000,
                         output_tokens=0, gpus=1, memory_gb=24)
    assert fit.reason == ("needs 23.9 GB per GPU for weights and KV cache (one sequence of "
                          "60000 tokens), more than 90% of 24 GB")
    # the boundary: weights plus one sequence exactly at 90% fit, a byte more does not
    assert cat.memory_reason(weight_bytes=72e9 - 1000, kv_bytes_per_token=10.0, batch=512,
                             tokens=100, gpus=1, memory_gb=80) == ""
    assert cat.memory_reason(weight_bytes=72e9 - 999, kv_bytes_per_token=10.0, batch=512,
                             tokens=100, gpus=1, memory_gb=80) != ""


def test_expert_parallel_replicas_hold_a_share_of_the_experts():
    m = model_spec("Qwen3-Coder-480B-A35B-Instruct-FP8")
    one = cat.replica_weight_bytes(m, m.params_b, 1.0, 1)
    eight = cat.replica_weight_bytes(m, m.params_b, 1.0, 1, ep=8)
    assert one == pytest.approx(480.2e9) and 60e9 < eight < 80e9
    assert cat.replica_weight_bytes(m, m.params_b, 1.0, 4, ep=4) == one  # ep <= tp: tp splits all
    dense = model_spec("Llama-3.1-8B")
    assert cat.replica_weight_bytes(dense, 8.03, 2.0, 1, ep=8) == 8.03 * 2e9
    b200 = gpu_spec("B200")
    assert cat.feasibility_reason(m, b200, 1, 1, 64, 1024, 256) != ""  # 480 GB on one GPU
    assert cat.feasibility_reason(m, b200, 1, 1, 64, 1024, 256, ep=8) == ""


# --- the grid and selection -------------------------------------------------------------------

def test_a_cap_beyond_the_kv_capacity_runs_memory_limited():
    c = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1,), batch_size=(8, 92, 93, 4096),
                       input_tokens=4096, output_tokens=1024)
    assert c["feasible"].all() and (c["reason"] == "").all()
    assert c["running_batch"].tolist() == [8.0, 92.0, CAPACITY, CAPACITY]
    assert c["memory_limited"].tolist() == [False, False, True, True]
    # the infeasible candidate has no running batch; one whose memory is unknown keeps its cap
    bad = candidate_grid(model="Llama-3.1-70B", gpu="L4", tp=(1,), batch_size=(8,))
    assert not bad["feasible"].iloc[0] and np.isnan(bad["running_batch"].iloc[0])
    assert not bad["memory_limited"].iloc[0]
    unknown = _quiet(candidate_grid, model="my-model", gpu="H100-SXM", tp=(1,), batch_size=(8,))
    assert unknown["running_batch"].tolist() == [8.0] and not unknown["memory_limited"].any()
    off = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1,), batch_size=(4096,),
                         check_memory=False)
    assert "running_batch" not in off and "memory_limited" not in off
    with pytest.raises(ValueError, match="set by the memory rule"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", running_batch=3)


@pytest.fixture(scope="module")
def table():
    return simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1, 2), pp=(1,),
                             batch_size=(8, 32, 128), input_tokens=(512, 4096),
                             output_tokens=(256, 1024), noise=0.0)


@pytest.mark.parametrize("rule", ["running", "cap"])
def test_selection_predicts_a_memory_limited_cap_at_its_running_batch(table, rule):
    """Whatever batch a model reads (a measured running batch, or the cap), it sees the batch
    the server will run."""
    train = table if rule == "running" else table.drop(columns="running_batch")
    model = _quiet(EnergyLensModel().fit, train)
    assert model.batch_rule_ == rule
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1,), batch_size=(64, 4096),
                          input_tokens=4096, output_tokens=1024)
    ranked = _quiet(select_config, model, cand)
    assert ranked.loc[1, "memory_limited"] and not ranked.loc[0, "memory_limited"]
    assert ranked.loc[1, "running_batch"] == CAPACITY and ranked.loc[1, "batch_size"] == 4096
    served = cand.assign(batch_size=[64.0, CAPACITY], running_batch=[64.0, CAPACITY])
    expected = _quiet(model.predict, served)
    np.testing.assert_allclose(ranked.loc[[0, 1], "energy_j"], expected, rtol=1e-12)
    # not the cap: predicted at 4096 sequences the energy per request would be far lower
    at_cap = _quiet(model.predict, cand.drop(columns=["running_batch", "memory_limited"]))
    assert at_cap[1] < 0.9 * ranked.loc[1, "energy_j"]


def test_gpu_memory_constraint_says_which_candidates_are_memory_limited(table):
    model = _quiet(EnergyLensModel().fit, table)
    cand = candidate_grid(model="Llama-3.1-8B", gpu=["H100-SXM", "L4"], tp=(1,),
                          batch_size=(16, 1024), input_tokens=4096, output_tokens=1024,
                          check_memory=False)
    r = _quiet(select_config, model, cand, constraints={"gpu_memory": True})
    assert r["feasible"].all()  # 16 GB of weights fit both; no cap is refused
    r = r.set_index(["gpu", "batch_size"])
    assert r.loc[("H100-SXM", 1024.0), "running_batch"] == CAPACITY
    assert r.loc[("L4", 1024.0), "running_batch"] == 9  # 5.5 GB left beside the weights
    assert r.loc[("L4", 16.0), "memory_limited"] and r.loc[("L4", 16.0), "running_batch"] == 9
    assert not r.loc[("H100-SXM", 16.0), "memory_limited"]
    assert r.loc[("H100-SXM", 16.0), "running_batch"] == 16


# --- the simulator shares the rule ------------------------------------------------------------

def test_simulator_and_selection_agree_on_the_running_batch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cand = candidate_grid(model=["Llama-3.1-8B", "Llama-3.1-70B", "Qwen3-30B-A3B"],
                              gpu=["H100-SXM", "L4"], tp=(1, 2, 4), batch_size=(8, 256, 1024),
                              input_tokens=(512, 4096), output_tokens=1024)
    sim = simulate_configurations(cand)
    np.testing.assert_array_equal(sim["reason"] == "", cand["feasible"])
    ok = cand["feasible"].to_numpy()
    np.testing.assert_array_equal(sim["running_batch"][ok], cand["running_batch"][ok])
    assert cand["memory_limited"].any() and (sim["running_batch"][ok] <= cand["batch_size"][ok]).all()
    assert (sim["batch_size"][ok] == cand["batch_size"][ok]).all()  # the cap is kept as given
    # a memory-limited cap is simulated at the running batch: it equals a cap of that size
    row = cand[cand["memory_limited"]].iloc[[0]]
    same = simulate_configurations(row.assign(batch_size=row["running_batch"]))
    np.testing.assert_allclose(sim.loc[row.index, "energy_j"], same["energy_j"], rtol=1e-12)
    # simulate_profiles keeps memory-limited caps that the old rule dropped
    df = simulate_profiles(models=["Llama-3.1-8B"], gpus=["L4"], tp=(1,), pp=(1,),
                           batch_size=(256,), input_tokens=(4096,), output_tokens=(1024,),
                           noise=0.0)
    assert df["running_batch"].tolist() == [9.0] and df["batch_size"].tolist() == [256.0]


# --- the public measurements ------------------------------------------------------------------

def _table(real_data, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return energylens.read_mlenergy_leaderboard(real_data / name)


@pytest.mark.realdata
@pytest.mark.parametrize("name, limited", [("mlenergy_v2", 16), ("mlenergy_v3", 33)])
def test_no_measured_configuration_is_refused(real_data, name, limited):
    """Every ML.ENERGY row ran; the rule once refused 49 of v2 and 99 of v3 (their caps' full
    KV cache did not fit, and expert-parallel replicas were charged every expert)."""
    t = _table(real_data, name)
    fits = memory_fits(t)
    assert all(f is not None and f.fits for f in fits), \
        [f.reason for f in fits if f is None or not f.fits][:3]
    assert memory_reasons(t) == [""] * len(t)
    lim = np.array([f.memory_limited for f in fits])
    assert lim.sum() == limited
    run = np.array([f.running_batch for f in fits])
    assert (run[lim] < t["batch_size"].to_numpy()[lim]).all()
    # the rule errs on the safe side: where it says memory-limited, the server ran at least
    # nine tenths of the sequences it predicts
    assert (t["running_batch"].to_numpy()[lim] >= 0.9 * run[lim]).all()


@pytest.mark.realdata
def test_a_measured_memory_limited_row_is_a_feasible_candidate(real_data):
    """ML.ENERGY v3 ran Qwen3-8B on one H100 at a cap of 96 (answers of 8,052 tokens on
    average): it ran 82 at once. The grid keeps the configuration, memory-limited."""
    t = _table(real_data, "mlenergy_v3")
    row = t[(t["model"] == "Qwen/Qwen3-8B") & (t["gpu"] == "H100") & (t["tp"] == 1)
            & (t["batch_size"] == 96)].iloc[0]
    c = candidate_grid(model=row["model"], gpu=row["gpu"], tp=(1,), batch_size=(96,),
                       input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    assert c["feasible"].iloc[0], c["reason"].iloc[0]
    assert c["memory_limited"].iloc[0] and c["running_batch"].iloc[0] < 96
    assert row["running_batch"] < 96


# --- expert parallelism needs the GPUs it spreads the experts over ----------------------------

QWEN_CODER = "Qwen3-Coder-480B-A35B-Instruct-FP8"


def test_expert_parallelism_cannot_use_gpus_the_configuration_lacks():
    c = _quiet(candidate_grid, model=QWEN_CODER, gpu="B200", tp=(1,), dp=(1, 8),
               batch_size=(64,), gpus_available=1, ep=8)
    assert c["feasible"].tolist() == [False, False]
    assert "ep=8 exceeds tp*dp=1 (tp=1, dp=1)" in c.loc[0, "reason"]
    assert c.loc[1, "reason"] == "needs 8 GPUs (tp*pp*dp), 1 available"
    ok = _quiet(candidate_grid, model=QWEN_CODER, gpu="B200", tp=(1,), dp=(8,),
                batch_size=(64,), ep=8)
    assert ok["feasible"].tolist() == [True], ok["reason"].tolist()


@pytest.mark.parametrize("ep", [0, -4, float("nan"), 2.5, True, "eight"])
def test_a_bad_expert_parallel_degree_is_refused(ep):
    with pytest.raises(ValueError, match="ep must be a whole number"):
        candidate_grid(model=QWEN_CODER, gpu="B200", tp=(8,), batch_size=(64,), ep=ep)


def test_the_rule_checks_ep_wherever_it_is_applied():
    from energylens.core.catalogue.rules import expert_parallel_reason

    m = model_spec(QWEN_CODER)
    with pytest.raises(ValueError, match="ep must be a whole number"):
        cat.replica_weight_bytes(m, m.params_b, 1.0, 1, ep=2.5)
    with pytest.raises(ValueError, match="ep must be a whole number"):
        cat.configuration_fit(m, gpu_spec("B200"), 8, 1, 64, 1024, 256, ep=0)
    assert expert_parallel_reason(2.5, 4) == "ep=2.5 must be a whole number >= 1"
    assert "ep=8 exceeds tp*dp=4" in cat.feasibility_reason(m, gpu_spec("B200"), 4, 1, 64, 1024,
                                                            256, ep=8, dp=1)
    # a candidate table (as select_config gets one): each row's ep against its tp * dp
    cand = _quiet(candidate_grid, model=QWEN_CODER, gpu="B200", tp=(1, 8), batch_size=(64,),
                  check_memory=False)
    reasons = memory_reasons(cand.assign(ep=[8, 2.5]))
    assert "ep=8 exceeds tp*dp=1" in reasons[0] and reasons[1] == "ep=2.5 must be a whole number >= 1"
    missing = memory_reasons(cand.assign(ep=[np.nan, 8]))  # a missing ep is 1
    assert "ep=" not in missing[0] and missing[0].startswith("needs 480.4 GB") and missing[1] == ""


@pytest.mark.realdata
def test_every_measured_expert_parallel_row_stays_feasible(real_data):
    from energylens.core.catalogue.rules import expert_parallel_reason

    t = _table(real_data, "mlenergy_v3")
    ep = t["ep"] > 1
    assert ep.any() and (t.loc[ep, "ep"] == t.loc[ep, "tp"] * t.loc[ep, "dp"]).all()
    assert all(expert_parallel_reason(e, p, d) == "" for e, p, d in t[["ep", "tp", "dp"]]
               .itertuples(index=False))
    assert all(f.fits for f in memory_fits(t))


def test_the_simulator_splits_the_experts_as_the_grid_does():
    kw = dict(model="Qwen3-30B-A3B", gpu="L4", tp=(1, 2), batch_size=(64,), input_tokens=4096,
              output_tokens=1024, ep=4)
    for dp in ((4,), (1,)):  # ep within tp * dp; ep above it
        cand = _quiet(candidate_grid, dp=dp, **kw)
        sim = simulate_configurations(cand)
        np.testing.assert_array_equal(sim["reason"] == "", cand["feasible"])
        assert sim["reason"].tolist() == cand["reason"].tolist()
        ok = cand["feasible"].to_numpy()
        if ok.any():
            np.testing.assert_array_equal(sim["running_batch"][ok], cand["running_batch"][ok])
    assert ok.sum() == 0 and sim["energy_j"].isna().all()
    fine = simulate_configurations(_quiet(candidate_grid, dp=(4,), **kw))
    assert (fine["energy_j"] > 0).all() and fine["ep"].tolist() == [4, 4]
    with pytest.raises(ValueError, match="'ep' must hold positive integers"):
        simulate_configurations(_quiet(candidate_grid, dp=(4,), **kw).assign(ep=2.5))


# --- a model without KV descriptors; non-finite inputs --------------------------------------

@pytest.fixture
def nokv():
    import pandas as pd

    cat.register_models(pd.DataFrame({"name": ["nokv-7b"], "params_b": [7.0]}))
    yield model_spec("nokv-7b")
    cat.reset_catalogue()


def test_a_model_without_kv_descriptors_is_checked_on_its_weights(nokv):
    assert cat.feasibility_reason(nokv, gpu_spec("H100"), 1, 1, 64, 512, 256) == ""
    fit = cat.configuration_fit(nokv, gpu_spec("H100"), 1, 1, 64, 512, 256)
    assert fit.fits and fit.capacity == math.inf and fit.running_batch == 64
    assert cat.feasibility_reason(nokv, gpu_spec("L4"), 1, 1, 64, 512, 256, precision="fp32"
                                  ).startswith("needs 28.0 GB per GPU")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = candidate_grid(model=["nokv-7b", "Llama-3.1-8B"], gpu="H100", tp=(1, 2),
                           batch_size=(8, 64))
    said = [str(w.message) for w in caught if "KV cache" in str(w.message)]
    assert len(said) == 1 and "['nokv-7b']" in said[0] and "Llama" not in said[0]
    assert c["feasible"].all()


@pytest.mark.parametrize("name, value", [("memory_gb", math.nan), ("memory_gb", math.inf),
                                         ("input_tokens", math.nan), ("output_tokens", math.inf),
                                         ("weight_bytes", math.nan), ("batch", math.nan)])
def test_memory_fit_refuses_non_finite_inputs_by_name(name, value):
    args = dict(weight_bytes=16e9, kv_bytes_per_token=KV, batch=64, input_tokens=4096,
                output_tokens=1024, gpus=1, memory_gb=80)
    with pytest.raises(ValueError, match=f"memory_fit: {name} must be a finite number"):
        cat.memory_fit(**{**args, name: value})


def test_a_configuration_that_cannot_run_has_no_capacity():
    fit = cat.memory_fit(weight_bytes=0.0, kv_bytes_per_token=1e9, batch=4, input_tokens=8,
                         output_tokens=2, gpus=1, memory_gb=10)
    assert not fit.fits and fit.capacity == 0 and math.isnan(fit.running_batch)
    # a layout that cannot split the model has no capacity either, though its memory would do
    split = cat.configuration_fit(cat.model_spec("Llama-3.2-3B"), cat.gpu_spec("H100"), 3, 1, 64,
                                  512, 128)
    assert "does not divide" in split.reason and split.capacity == 0


# --- caps that run identically are one candidate ----------------------------------------------

@pytest.fixture(scope="module")
def l4_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["L4", "H100-SXM"], noise=0.05,
                                  seed=0)
        return EnergyLensModel().fit(table)


def test_suggest_next_scores_caps_that_run_alike_once(l4_model):
    from energylens import suggest_next

    # on one L4 the KV cache holds 9 sequences of 4,096 + 1,024 tokens: caps 16, 64 and 256
    # all run 9 at once, as the cap of 9 does
    cand = _quiet(candidate_grid, model="Llama-3.1-8B", gpu="L4", tp=(1,),
                  batch_size=(4, 9, 16, 64, 256), input_tokens=4096, output_tokens=1024)
    assert cand["running_batch"].tolist() == [4.0, 9.0, 9.0, 9.0, 9.0]
    for strategy in ("selection", "uncertainty"):
        nxt = _quiet(suggest_next, l4_model, cand, k=4, strategy=strategy)
        assert sorted(nxt["batch_size"]) == [4.0, 9.0], nxt
        kept = nxt[nxt["batch_size"] == 9.0]["reason"].iloc[0]
        assert "also stands for caps 16, 64, 256" in kept
    sel = _quiet(suggest_next, l4_model, cand, k=4, strategy="selection")
    assert abs(sel["score"].sum() - 1.0) < 1e-9


# --- a given running batch never exceeds the KV capacity --------------------------------------

def test_a_given_running_batch_is_held_to_the_kv_capacity(l4_model):
    import pandas as pd

    cand = pd.DataFrame({"model": ["Llama-3.1-8B"], "gpu": ["L4"], "tp": [1],
                         "batch_size": [64.0], "input_tokens": [4096.0],
                         "output_tokens": [1024.0]})
    plain = _quiet(select_config, l4_model, cand, constraints={"gpu_memory": True})
    with pytest.warns(energylens.EnergyLensWarning, match=r"running_batch of rows \[0\] exceeds"):
        given = select_config(l4_model, cand.assign(running_batch=64.0),
                              constraints={"gpu_memory": True})
    assert plain["running_batch"].tolist() == given["running_batch"].tolist() == [9.0]
    assert given["memory_limited"].tolist() == [True]
    assert given["energy_j"].tolist() == plain["energy_j"].tolist()
    # a smaller given running batch is kept
    small = _quiet(select_config, l4_model, cand.assign(running_batch=5.0),
                   constraints={"gpu_memory": True})
    assert small["running_batch"].tolist() == [5.0]


def test_select_config_refuses_an_unknown_precision_under_the_memory_rule(l4_model):
    cand = _quiet(candidate_grid, model="Llama-3.1-8B", gpu="L4", tp=(1,), batch_size=(8,))
    with pytest.raises(ValueError, match="unknown precision 'q4'"):
        _quiet(select_config, l4_model, cand.assign(precision="q4"),
               constraints={"gpu_memory": True})
    with pytest.raises(ValueError, match="unknown precision 'q4'"):
        candidate_grid(model="Llama-3.1-8B", gpu="L4", precision="q4")
