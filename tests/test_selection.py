"""Selection, candidate grids, Pareto fronts, latency models and active profiling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energylens import (
    EnergyLensModel,
    GroupedModel,
    InfeasibleError,
    LatencyModel,
    SimulatorOracle,
    candidate_grid,
    pareto_front,
    select_config,
    simulate_profiles,
    suggest_next,
)
from energylens.exceptions import EnergyLensWarning, ExtrapolationWarning
from energylens.selection.rank import model_target


@pytest.fixture(scope="module")
def sim():
    return simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM", "A100-80GB"], noise=0.0)


@pytest.fixture(scope="module")
def h100(sim):
    """The simulator's H100 rows, an energy model and a TPOT model fitted on them."""
    g = sim[sim.gpu == "H100-SXM"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g, EnergyLensModel().fit(g), LatencyModel(target="tpot_s").fit(g)


def test_oracle_selection_returns_true_optimum(sim):
    oracle = SimulatorOracle().fit(sim)
    for _, cand in sim.groupby(["gpu", "input_tokens", "output_tokens"]):
        ranked = select_config(oracle, cand.drop(columns="energy_j"))
        assert ranked.index[0] == cand["energy_j"].idxmin()
        assert ranked["rank"].iloc[0] == 1


def test_fitted_model_picks_near_optimum(sim):
    g = sim[sim.gpu == "H100-SXM"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(g)
    regrets = []
    for _, cand in g.groupby(["input_tokens", "output_tokens"]):
        best = select_config(m, cand).index[0]
        regrets.append(cand.loc[best, "energy_j"] / cand.energy_j.min() - 1)
    assert np.mean(regrets) < 0.05


def test_constraints_honoured_and_reasons(h100):
    g, m, lat = h100
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4, 8), pp=(1, 2),
                          batch_size=(8, 32, 128), input_tokens=1024, output_tokens=512, gpus_available=4)
    bound = float(np.median(lat.predict(cand)))
    r = select_config(m, cand, latency_model=lat, constraints={"tpot_s": bound, "max_gpus": 4})
    ok = r[r.feasible]
    assert (ok.tpot_s <= bound).all() and (ok.n_gpus <= 4).all()
    assert list(ok["rank"]) == list(range(1, len(ok) + 1))
    assert (np.diff(ok.energy_j) >= 0).all()
    bad = r[~r.feasible]
    assert bad["rank"].isna().all() and (bad.reason != "").all()
    assert bad.reason.str.contains("tpot_s|GPUs").all()
    eight = bad[bad.tp == 8]
    assert eight.reason.str.contains(r"needs (?:8|16) GPUs").all()
    with pytest.raises(InfeasibleError, match="tpot_s"):
        select_config(m, cand, latency_model=lat, constraints={"tpot_s": 1e-9})
    with pytest.raises(ValueError, match="needs a latency model"):
        select_config(m, cand, constraints={"ttft_s": 1.0})
    top = select_config(m, cand, top=2, include_infeasible=False)
    assert len(top) == 2


def test_candidate_grid_feasibility_and_dp():
    c = candidate_grid(model="Llama-3.1-70B", gpu=["L4", "H100-SXM"], tp=(1, 2, 4, 8), dp=(1, 2),
                       batch_size=(8,), gpus_available=8)
    assert (c.n_gpus == c.tp * c.pp * c.dp).all()
    row = c[(c.gpu == "H100-SXM") & (c.tp == 8) & (c.dp == 2)].iloc[0]
    assert not row.feasible and "needs 16 GPUs" in row.reason  # more replicas than GPUs
    assert not c[(c.gpu == "L4") & (c.tp == 1)].feasible.any()
    assert "GB per GPU" in c[(c.gpu == "L4") & (c.tp == 1)].reason.iloc[0]
    assert c[(c.gpu == "H100-SXM") & (c.tp == 4) & (c.dp == 2)].feasible.all()
    kept = candidate_grid(model="Llama-3.1-70B", gpu="L4", tp=(1, 8), drop_infeasible=True)
    assert kept.feasible.all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20)), min_size=1, max_size=25))
def test_pareto_front_property(points):
    t = pd.DataFrame(points, columns=["latency_s", "energy_j"]).astype(float)
    out = pareto_front(t)
    xs, ys, on = out.latency_s.to_numpy(), out.energy_j.to_numpy(), out.pareto.to_numpy()
    for i in range(len(out)):
        dominated = np.any((xs <= xs[i]) & (ys <= ys[i]) & ((xs < xs[i]) | (ys < ys[i])))
        assert on[i] == (not dominated)
    assert on.any()


def test_latency_model_recovers_parameters():
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame({"tp": rng.choice([1, 2, 4], n), "pp": rng.choice([1, 2], n),
                       "batch_size": rng.choice([1.0, 8, 32, 128], n),
                       "input_tokens": rng.choice([128.0, 1024, 4096], n),
                       "output_tokens": rng.choice([64.0, 512], n)})
    true = LatencyModel(target="tpot_s")
    theta = np.array([0.02, 2e-8, 0.3, 1e-4, 5e-4])  # a5..a9
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    df["tpot_s"] = true._kernel(V, theta) * np.exp(rng.normal(0, 0.01, n))
    m = LatencyModel(target="tpot_s").fit(df)
    np.testing.assert_allclose(m.coef_, theta, rtol=0.15)
    assert list(m.params_.index) == ["a5", "a6", "a7", "a8", "a9"]
    with pytest.raises(ValueError, match="'target' parameter"):
        LatencyModel(target="power_w").fit(df)


def test_suggest_next(sim):
    g = sim[sim.gpu == "H100-SXM"]
    train = g.sample(25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(train)
    s1 = suggest_next(m, g, k=4, measured=train)
    s2 = suggest_next(m, g, k=4, measured=train)
    pd.testing.assert_frame_equal(s1, s2)
    assert len(s1) == 4 and s1.index.is_unique and not set(s1.index) & set(train.index)
    pi = m.predict_interval(g.drop(index=train.index))
    width = (pi.upper - pi.lower) / pi.energy_j
    assert set(s1.index) == set(width.nlargest(4).index)
    s3 = suggest_next(m, g, k=3, strategy="selection", scenario=["input_tokens", "output_tokens"])
    assert (np.diff(s3.score) <= 0).all()
    with pytest.raises(ValueError, match="strategy"):
        suggest_next(m, g, strategy="random")


def test_gpu_memory_constraint_and_objectives(sim):
    oracle = SimulatorOracle().fit(sim)
    cand = candidate_grid(model="Llama-3.1-70B", gpu="H100-SXM", tp=(1, 2, 4, 8), batch_size=(8,),
                          input_tokens=1024, output_tokens=(64, 512), check_memory=False)
    assert cand.feasible.all()
    r = select_config(oracle, cand, constraints={"gpu_memory": True})
    small = r[r.tp == 1]
    assert (~small.feasible).all() and small.reason.str.contains("GB per GPU").all()
    assert r[r.feasible].tp.min() >= 2
    per_token = select_config(oracle, cand[cand.feasible], objective="energy_per_output_token_j",
                              constraints={"gpu_memory": True})
    ok = per_token[per_token.feasible]
    np.testing.assert_allclose(ok.energy_per_output_token_j, ok.energy_j / ok.output_tokens)
    assert (np.diff(ok.energy_per_output_token_j) >= 0).all()
    assert ok.output_tokens.iloc[0] == 512  # longer outputs amortise the prompt
    with pytest.raises(ValueError, match="objective"):
        select_config(oracle, cand, objective="energy_per_gpu")
    with pytest.raises(ValueError, match="Unknown constraint"):
        select_config(oracle, cand, constraints={"power_w": 100})
    odd = cand.assign(gpu="MysteryGPU")
    with pytest.raises(ValueError, match="gpu_memory constraint cannot be checked"):
        select_config(KnownEnergy(), odd, constraints={"gpu_memory": True})


class KnownEnergy:
    """Energy given by the candidate's GPU count (no interval)."""

    def predict(self, X):
        return 10.0 * X["tp"].to_numpy(dtype=float)


def test_model_without_interval_and_infeasible_error_names_tightest():
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4), batch_size=(8,))
    r = select_config(KnownEnergy(), cand)
    assert r.energy_lower_j.isna().all() and list(r.tp) == [1, 2, 4]
    with pytest.raises(InfeasibleError, match=r"ttft_s excludes 3 of 3 candidates \(constraints: "
                                              r"ttft_s <= 0.5, tpot_s <= 0.1, gpu_memory\)"):
        select_config(KnownEnergy(), cand.assign(ttft_s=[1.0, 2.0, 3.0], tpot_s=[0.01, 0.2, 0.2]),
                      constraints={"ttft_s": 0.5, "tpot_s": 0.1, "gpu_memory": True})


def test_docstring_examples_run():
    import doctest

    import energylens.models.latency
    from energylens.selection import active, grid, pareto, rank

    for mod in (grid, rank, pareto, active, energylens.models.latency):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


def test_candidate_grid_reads_the_catalogue_and_precision():
    # The -FP8 checkpoint takes one byte per weight: 70.6 GB fit one H100 (72 GB usable),
    # the BF16 one needs two; Hugging Face ids resolve and are kept as given.
    c = candidate_grid(model=["meta-llama/Llama-3.1-70B-Instruct",
                              "meta-llama/Llama-3.1-70B-Instruct-FP8"],
                       gpu="NVIDIA H100 80GB HBM3", tp=(1, 2), batch_size=(1,), input_tokens=512,
                       output_tokens=256)
    ok = c.set_index(["model", "tp"])["feasible"]
    assert not ok[("meta-llama/Llama-3.1-70B-Instruct", 1)]
    assert ok[("meta-llama/Llama-3.1-70B-Instruct-FP8", 1)]
    assert ok[("meta-llama/Llama-3.1-70B-Instruct", 2)]
    assert (c.params_b == 70.6).all()
    # The same rule from a precision column in select_config.
    cand = c.drop(columns=["feasible", "reason"]).assign(
        model="Llama-3.1-70B", precision=["bf16", "bf16", "fp8", "fp8"])
    r = select_config(KnownEnergy(), cand, constraints={"gpu_memory": True})
    assert sorted(r[~r.feasible].precision) == ["bf16"]
    with pytest.raises(ValueError, match="gpus_available"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100", gpus_available=0)


class FlaggedEnergy(KnownEnergy):
    """An interval with an extra column, as a model flagging extrapolation would return."""

    def predict_interval(self, X, level=0.9):
        e = self.predict(X)
        return pd.DataFrame({"energy_j": e, "lower": 0.9 * e, "upper": 1.1 * e,
                             "extrapolated": X["tp"].to_numpy() > 2}, index=X.index)


def test_select_config_keeps_extra_prediction_columns():
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4), batch_size=(8,))
    r = select_config(FlaggedEnergy(), cand)
    assert r.set_index("tp")["extrapolated"].to_dict() == {1: False, 2: False, 4: True}
    np.testing.assert_allclose(r.energy_upper_j, 1.1 * r.energy_j)


def test_latency_models_must_predict_the_bounded_column(sim):
    """A model is never read as the latency it does not predict: an energy model given for
    tpot_s (joules read as seconds), or a ttft_s model given for tpot_s, is an error; a
    grouped latency model given alone bounds the column its group models predict."""
    g = sim[sim.gpu == "H100-SXM"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(g)
        ttft = LatencyModel(target="ttft_s").fit(g)
        tpot = GroupedModel(LatencyModel(target="tpot_s"), by=["model"]).fit(g)
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2), batch_size=(8, 128),
                          input_tokens=1024, output_tokens=512)
    with pytest.raises(ValueError, match="EnergyLensModel predicting 'energy_j', not 'tpot_s'"):
        select_config(m, cand, latency_model={"tpot_s": m}, constraints={"tpot_s": 0.05})
    with pytest.raises(ValueError, match="predicting 'ttft_s', not 'tpot_s'"):
        select_config(m, cand, latency_model={"tpot_s": ttft})
    r = select_config(m, cand, latency_model=tpot, constraints={"tpot_s": 10.0})
    assert "tpot_s" in r.columns and "latency_s" not in r.columns
    assert model_target(tpot) == "tpot_s" and model_target(m) == "energy_j"


def test_extrapolation_warning_points_at_the_callers_line(h100):
    g, m, _ = h100
    far = g.head(2).assign(tp=64)  # far beyond the degrees measured
    with pytest.warns(ExtrapolationWarning) as caught:
        select_config(m, far)
    assert {w.filename for w in caught} == {__file__}


def test_a_latency_model_beside_measured_latencies_says_which_is_used(h100):
    g, m, tpot = h100
    cand = g.head(6)
    assert cand["tpot_s"].notna().all()
    with pytest.warns(EnergyLensWarning, match="measured tpot_s column.*kept as tpot_s_measured"):
        r = select_config(m, cand, latency_model={"tpot_s": tpot})
    np.testing.assert_array_equal(r.sort_index()["tpot_s_measured"], cand["tpot_s"])
    np.testing.assert_allclose(r.sort_index()["tpot_s"], tpot.predict(cand))


def test_an_unknown_latency_never_meets_a_bound(h100):
    """A NaN latency was ranked first under any bound (NaN > bound is False)."""
    g, m, _ = h100
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1,), batch_size=(8, 64),
                          input_tokens=256, output_tokens=256).assign(tpot_s=[np.nan, 0.01])
    r = select_config(m, cand, constraints={"tpot_s": 0.05})
    assert r.feasible.tolist() == [True, False] and r["rank"].iloc[0] == 1
    assert r.batch_size.iloc[0] == 64 and "tpot_s unknown (NaN)" in r.reason.iloc[1]


@pytest.mark.parametrize("bound", [np.nan, "0.05", -1.0, np.inf, True])
def test_a_bound_that_is_not_a_positive_number_is_refused(h100, bound):
    g, m, _ = h100
    with pytest.raises(ValueError, match=r"tpot_s must be a positive finite number"):
        select_config(m, g.head(3), constraints={"tpot_s": bound})


def test_a_bound_of_none_is_no_bound(h100):
    g, m, _ = h100
    r = select_config(m, g.head(3), constraints={"tpot_s": None, "max_gpus": 8})
    assert r.feasible.all()


def test_select_config_refuses_a_latency_model_or_a_ranking_score(h100):
    from energylens.evaluation import RuleOfThumbModel

    g, _, tpot = h100
    with pytest.raises(ValueError, match=r"predicting 'tpot_s'.*latency_model=\{'tpot_s': model\}"):
        select_config(tpot, g.head(3))
    with pytest.raises(ValueError, match="ranking score, not joules"):
        select_config(RuleOfThumbModel().fit(g), g.head(3))


def test_a_model_blind_to_the_candidates_differences_says_so(sim):
    from energylens import SweetSpotModel

    g = sim[(sim.gpu == "H100-SXM") & (sim.tp == 1) & (sim.batch_size == sim.batch_size.max())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss = SweetSpotModel().fit(g)
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2), batch_size=(8, 64),
                          input_tokens=256, output_tokens=256)
    with pytest.warns(EnergyLensWarning, match=r"differ in \['tp', 'batch_size'\].*order is arbitrary"):
        select_config(ss, cand)


@pytest.mark.filterwarnings("ignore::energylens.exceptions.ExtrapolationWarning")
def test_suggest_next_does_not_invent_probabilities_without_intervals(sim):
    """A two-row fit has no interval (NaN): 'selection' reported P(optimum) = 1.000 for the
    first row and 0 for the others, which was only the row order."""
    g = sim[sim.gpu == "H100-SXM"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(g.head(2))
    cand = g.iloc[2:8]
    with pytest.warns(EnergyLensWarning, match="no finite prediction interval"):
        sel = suggest_next(m, cand, k=3, strategy="selection")
    assert sel.score.isna().all() and (sel.reason.str.contains("unknown")).all()
    unc = suggest_next(m, cand, k=3)
    assert np.isinf(unc.score).all() and unc.reason.str.contains("no finite").all()


def test_suggest_next_warnings_point_at_the_callers_line(h100):
    g, m, _ = h100
    with pytest.warns(ExtrapolationWarning) as caught:
        suggest_next(m, g.head(4).assign(tp=64), k=2)
    assert {w.filename for w in caught} == {__file__}


@pytest.mark.parametrize("kwargs,match", [
    ({"model": None}, "model must be names"), ({"gpu": ""}, "gpu must be names"),
    ({"batch_size": ("abc",)}, "batch_size must be finite and > 0"),
    ({"batch_size": (None,)}, "batch_size must be finite and > 0"),
    ({"precision": "int3"}, "unknown precision 'int3'"),
])
def test_candidate_grid_names_a_bad_argument(kwargs, match):
    """None or '' gave a feasible row, 'abc' a bare float() error, an unknown precision was
    silently ignored."""
    args = {"model": "Llama-3.1-8B", "gpu": "H100-SXM", **kwargs}
    with pytest.raises(ValueError, match=match):
        candidate_grid(**args)


def test_a_precision_given_to_candidate_grid_sizes_the_weights():
    """The precision column was added after the memory rule ran, so FP8 weights were sized as
    BF16 ones: 70B at TP 2 on two 48 GB L40S was refused."""
    bf16 = candidate_grid(model="Llama-3.1-70B", gpu="L40S", tp=(2,), batch_size=(8,))
    fp8 = candidate_grid(model="Llama-3.1-70B", gpu="L40S", tp=(2,), batch_size=(8,),
                         precision="fp8")
    assert not bf16.feasible.iloc[0] and fp8.feasible.iloc[0] and fp8.precision.iloc[0] == "fp8"


@pytest.mark.parametrize("spell", [lambda v: "yes" if v else "no", str, lambda v: int(v)])
def test_a_feasible_column_read_from_text_keeps_its_meaning(h100, spell):
    """"no" and "False" were cast to True: an infeasible row was ranked while its reason said
    why it could not run."""
    _, m, _ = h100
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 8), batch_size=(32,),
                          input_tokens=1024, output_tokens=512, gpus_available=4)
    assert cand["feasible"].tolist() == [True, True, False]
    text = cand.astype({"feasible": object}).assign(feasible=[spell(v) for v in cand["feasible"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(select_config(m, text).drop(columns="feasible"),
                                      select_config(m, cand).drop(columns="feasible"))
    blank = text.assign(feasible=[spell(True), None, spell(False)])
    with pytest.raises(ValueError, match=r"select_config: column 'feasible' must be a yes/no flag .*"
                                         r"in every row; 1 row\(s\) are not \(rows \[1\]"):
        select_config(m, blank)


def test_the_gpu_count_of_text_layout_columns_is_a_number(h100):
    """"1" * "2" was string repetition ("11" GPUs > 4): layouts within the bound were ruled
    out."""
    _, m, _ = h100
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2), pp=(2,), batch_size=(32,),
                          input_tokens=1024, output_tokens=512)
    text = cand.astype({c: str for c in ("tp", "pp", "dp")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = select_config(m, text, constraints={"max_gpus": 4})
    assert r["feasible"].all() and (r["reason"] == "").all()


def test_suggest_next_never_proposes_a_candidate_that_cannot_run(h100):
    """Infeasible rows (memory, GPUs available) topped both strategies: tp=1 of a 70B model
    needs 141 GB on an 80 GB GPU, and took probability of being the optimum from the rest."""
    _, m, _ = h100
    cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4, 8), batch_size=(8, 256),
                          input_tokens=1024, output_tokens=512, gpus_available=2)
    assert not cand["feasible"].all()
    for strategy in ("uncertainty", "selection"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = suggest_next(m, cand, k=10, strategy=strategy, scenario=["input_tokens"])
        assert s["feasible"].all() and len(s) == int(cand["feasible"].sum())
    with pytest.raises(ValueError, match="no candidate is feasible"):
        suggest_next(m, cand[~cand["feasible"]])
    with pytest.raises(ValueError, match="No unmeasured candidate left"):
        suggest_next(m, cand.iloc[:0])


def test_suggest_next_matches_measured_rows_by_value(h100):
    """Integer batch and token columns ('256') did not match the measured floats ('256.0'):
    every measured configuration was proposed again."""
    g, m, _ = h100
    measured = g.head(12)
    again = measured.drop(columns="energy_j").astype(
        {"batch_size": int, "input_tokens": int, "output_tokens": int})
    with pytest.raises(ValueError, match="No unmeasured candidate left"):
        suggest_next(m, again, measured=measured)
    left = suggest_next(m, pd.concat([again, g.iloc[12:14].drop(columns="energy_j")]), k=5,
                        measured=measured)
    assert sorted(left.index) == sorted(g.index[12:14])
