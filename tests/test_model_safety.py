"""Models never return silently wrong numbers: no negative or non-finite predictions,
extrapolation flagged and widened, undefined uncertainty reported as such, tampered model
files refused, and the defects found on real tables fixed (issue: hardening)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens import EnergyLensModel, SweetSpotModel, candidate_grid
from energylens.exceptions import (
    ConvergenceWarning,
    EnergyLensWarning,
    ExtrapolationWarning,
    FitError,
    IdentifiabilityWarning,
    ModelFileError,
    PoorFitWarning,
)
from energylens.models.ensemble import (
    GradientBoostingEnergyModel,
    RandomForestEnergyModel,
    ResidualBoostedModel,
)

from .test_models import make_table, quiet_fit


@pytest.fixture(scope="module")
def demo_group():
    demo = energylens.read_profiles(energylens.datasets.demo_table_path())
    part = demo[(demo.model == "Llama-3.1-8B") & (demo.gpu == "H100-SXM")]
    return part, quiet_fit(EnergyLensModel(), part)


def _far_candidates():
    return candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 8, 64), pp=(1, 4),
                          batch_size=(1, 4096), input_tokens=(128, 1_000_000),
                          output_tokens=(16, 1_000_000), check_memory=False)


def test_no_prediction_is_negative_or_non_finite_far_outside(demo_group):
    _, model = demo_group
    cand = _far_candidates()
    with pytest.warns(ExtrapolationWarning, match=r"tp up to 64 \(8x the largest seen, 8\)"):
        pi = model.predict_interval(cand)
    for col in ("energy_j", "lower", "upper"):
        assert np.all(np.isfinite(pi[col])) and np.all(pi[col] > 0), col
    assert (model.params_.loc[["c3", "c4", "c8", "c9"], "value"] >= 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        ranked = energylens.select_config(model, cand)
    assert (ranked["energy_j"] > 0).all() and ranked["extrapolated"].any()


def test_extrapolation_is_flagged_per_row_and_widens_intervals(demo_group):
    part, model = demo_group
    inside = part.head(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        pi_in = model.predict_interval(inside)  # no warning inside the data
    assert not pi_in["extrapolated"].any()
    far = inside.assign(tp=32)
    with pytest.warns(ExtrapolationWarning):
        pi_far = model.predict_interval(far)
    assert pi_far["extrapolated"].all() and (pi_far["extrapolated_by"] == "tp").all()
    width_in = np.log(pi_in["upper"] / pi_in["lower"]).to_numpy()
    width_far = np.log(pi_far["upper"] / pi_far["lower"]).to_numpy()
    assert np.all(width_far > 2 * width_in)


def test_unseen_model_and_gpu_are_flagged_without_an_interval(demo_group):
    part, model = demo_group
    other = part.head(3).assign(model="Mistral-7B", gpu="A100-80GB")
    with pytest.warns(ExtrapolationWarning, match="model 'Mistral-7B' not seen in training"):
        pred = model.predict(other)
    assert np.all(pred > 0)
    with pytest.warns(ExtrapolationWarning):
        pi = model.predict_interval(other)
    assert pi["lower"].isna().all() and pi["upper"].isna().all()
    assert set(pi["extrapolated_by"]) == {"model,gpu"}


def test_exact_fit_has_no_interval_and_says_why():
    df = make_table(n=3, seed=1, tp=(1,), pp=(1,))
    with pytest.warns(IdentifiabilityWarning, match="no degrees of freedom"):
        m = EnergyLensModel().fit(df)
    pi = m.predict_interval(df)
    assert pi["lower"].isna().all() and pi["upper"].isna().all()
    assert "no degrees of freedom" in m.fit_report()


def test_too_few_rows_and_bad_targets_are_fit_errors():
    df = make_table(n=10, seed=2)
    with pytest.raises(FitError, match="at least 2 rows"):
        EnergyLensModel().fit(df.head(1))
    with pytest.raises(FitError, match="strictly positive target"):
        EnergyLensModel().fit(df.assign(energy_j=0.0))
    with pytest.raises(FitError, match="non-finite"):
        EnergyLensModel().fit(df.assign(energy_j=np.inf))


def test_bootstrap_on_a_loaded_model_says_what_it_needs(tmp_path):
    df = make_table(n=80, seed=3)
    m = quiet_fit(EnergyLensModel(), df)
    assert m.predict_interval(df.head(2), method="bootstrap", n_boot=5)["upper"].notna().all()
    loaded = energylens.load_model(m.save(tmp_path / "m.json"))
    with pytest.raises(FitError, match="refit the model on its table or use method='delta'"):
        loaded.predict_interval(df.head(2), method="bootstrap")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["parameters"][0].update(value=1e308), "outside|non-finite"),
    (lambda d: d["parameters"][2].update(value=-5.0), "lies outside its bounds"),
    (lambda d: d["fit"].update(nfev="abc"), "fit.nfev: expected a number"),
    (lambda d: d["fit"].update(n=-3), "fit.n: must be >= 0"),
    (lambda d: d["fit"].update(batch_rule="saturating", batch_k=-2.0), "positive fit.batch_k"),
    (lambda d: d["fit"].update(free="yes"), "fit.free"),
    (lambda d: d["fit"]["domain"].update(ranges={"t": [8, 1]}), "low <= high"),
    (lambda d: d["fit"]["domain"].update(labels=[1, 2]), "labels"),
    (lambda d: d.update(init_params={"loss": "ls"}), "cannot rebuild"),
])
def test_tampered_model_files_are_refused(tmp_path, edit, message):
    df = make_table(n=60, seed=4)
    path = quiet_fit(EnergyLensModel(), df).save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=message):
        energylens.load_model(path)


def test_deeply_nested_and_huge_numbers_are_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        energylens.load_model(path)
    df = make_table(n=60, seed=4)
    good = quiet_fit(EnergyLensModel(), df).save(tmp_path / "g.json").read_text()
    path.write_text(good.replace('"nfev": ', '"nfev": 1' + "0" * 5000 + ", \"x\": ", 1))
    with pytest.raises(ModelFileError):
        energylens.load_model(path)


def test_saturating_constant_at_its_search_edge_warns():
    df = make_table(n=120, seed=5)
    df["batch_kind"] = "cap"
    df["n_requests"] = 1e6  # pools so large that the cap always binds: k is not determined
    with pytest.warns(ConvergenceWarning, match="saturating batch constant k"):
        m = EnergyLensModel().fit(df)
    assert m.batch_rule_ == "saturating" and m._state_.batch_k_at_bound


def test_rank_deficiency_at_the_optimum_warns():
    df = make_table(n=60, seed=6, tp=(1, 2), pp=(1,))
    df["input_tokens"] = 512.0
    with pytest.warns(IdentifiabilityWarning):
        m = EnergyLensModel().fit(df)
    assert m.fit_stats_["rank"] <= m.n_free_params_


def test_sweet_spot_without_interior_optimum_is_inf():
    si, so = np.meshgrid([64.0, 256, 1024], [16.0, 64, 256, 1024])
    df = pd.DataFrame({"input_tokens": si.ravel(), "output_tokens": so.ravel()})
    e = (1e-3 * df.input_tokens + 0.5) / df.output_tokens + 0.1  # no decode-context cost
    e = e * np.exp(np.random.default_rng(0).normal(0, 0.01, len(e)))
    m = quiet_fit(SweetSpotModel(), df, e * df.output_tokens)
    with pytest.warns(EnergyLensWarning, match="no interior optimum"):
        opt = m.optimal_output_tokens([256.0])
    assert np.isinf(opt).all()


def test_sweet_spot_optimum_outside_the_data_is_flagged():
    si, so = np.meshgrid([64.0, 256, 1024, 4096], [16.0, 32, 64, 128])
    df = pd.DataFrame({"input_tokens": si.ravel(), "output_tokens": so.ravel()})
    e = (2e-6 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \
        + 1e-5 * df.input_tokens + 2e-5 * df.output_tokens + 0.1
    m = quiet_fit(SweetSpotModel(), df, e * df.output_tokens)
    with pytest.warns(ExtrapolationWarning, match="outside the output lengths fitted"):
        m.optimal_output_tokens([1024.0])


@pytest.mark.parametrize("est", [RandomForestEnergyModel(n_estimators=20), GradientBoostingEnergyModel(
    max_iter=20), ResidualBoostedModel()])
def test_ensembles_take_cap_tables_with_request_pools(est):
    # batch_kind="cap" with n_requests but no running batch or latency: the saturating rule,
    # whose constant only the closed forms fit (the ensembles raised "needs a positive k").
    df = make_table(n=80, seed=8)
    df["batch_kind"] = "cap"
    df["n_requests"] = np.random.default_rng(0).choice([50.0, 500.0], len(df))
    m = quiet_fit(est, df)
    pred = m.predict(df)
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)


def test_ensemble_flags_unseen_labels():
    df = make_table(n=80, seed=9)
    m = quiet_fit(RandomForestEnergyModel(n_estimators=10), df)
    with pytest.warns(ExtrapolationWarning, match="gpu 'other' not seen"):
        m.predict(df.head(2).assign(gpu="other"))


def test_negative_predictions_of_a_linear_baseline_raise():
    from energylens import LinearEnergyModel

    df = make_table(n=80, seed=10)
    m = quiet_fit(LinearEnergyModel(), df)
    far = df.head(2).assign(batch_size=1e7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        if m.coef_[3] < 0:
            with pytest.raises(ValueError, match="negative or non-finite"):
                m.predict(far)
        else:
            assert np.all(m.predict(far) >= 0)


def test_missing_pipeline_column_is_filled_only_where_training_had_one_value():
    varied = quiet_fit(EnergyLensModel(), make_table(n=80, seed=11))
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['pp'\]"):
        varied.predict(make_table(n=5, seed=1).drop(columns="pp"))
    single = quiet_fit(EnergyLensModel(), make_table(n=80, seed=11, pp=(1,)))
    assert np.all(single.predict(make_table(n=5, seed=1, pp=(1,)).drop(columns="pp")) > 0)


@pytest.mark.parametrize("make", [EnergyLensModel, SweetSpotModel, energylens.LatencyModel,
                                  energylens.GroupedModel, energylens.HierarchicalEnergyModel])
def test_no_rows_to_predict_give_empty_results_with_their_columns(demo_group, make):
    part, _ = demo_group
    m = quiet_fit(make(), part)
    assert len(m.predict(part.head(0))) == 0
    full = m.predict_interval(part.head(3))
    empty = m.predict_interval(part.head(0))
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)


def test_candidate_grid_refuses_empty_and_non_positive_axes():
    with pytest.raises(ValueError, match="tp holds no value"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=())
    with pytest.raises(ValueError, match=r"batch_size must be finite and > 0; got \[-8\]"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", batch_size=(8, -8))
    with pytest.raises(ValueError, match="input_tokens must be finite and > 0"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", input_tokens=float("nan"))
    # a parallel degree is a whole number of GPUs: 1.5 is refused, never truncated to 1
    with pytest.raises(ValueError, match=r"tp must hold whole numbers of GPUs >= 1; got \[1.5\]"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1.5, 2))
    with pytest.raises(ValueError, match=r"dp must hold whole numbers of GPUs >= 1; got \[0\]"):
        candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", dp=(0,))
    c = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(2.0,), batch_size=(8,))
    assert c["tp"].tolist() == [2]


def test_candidate_grid_says_when_memory_cannot_be_checked():
    with pytest.warns(EnergyLensWarning, match="could not be checked for \\['my-model on H100-SXM'\\]"):
        c = candidate_grid(model="my-model", gpu="H100-SXM", tp=(1,), batch_size=(8,))
    assert c.feasible.all()
    with warnings.catch_warnings():  # its size given: checked, no warning
        warnings.simplefilter("error", EnergyLensWarning)
        c = candidate_grid(model="my-model", gpu="H100-SXM", tp=(1,), batch_size=(8,), params_b=7.0)
    assert c.feasible.all()


@pytest.mark.parametrize("col,value", [("tp", 1.5), ("pp", 0.5), ("dp", 2.5)])
def test_a_fractional_parallel_degree_is_an_error(col, value):
    """tp = 1.5 was fitted without a word (candidate_grid refuses it)."""
    df = make_table(n=40, seed=3).assign(dp=1)
    df.index = [f"r{i}" for i in range(len(df))]
    df[col] = df[col].astype(float)
    df.loc["r4", col] = value
    with pytest.raises(ValueError, match=rf"EnergyLensModel: '{col}' must be a whole number >= 1; "
                                         rf"1 row\(s\) are not \(first at rows \['r4'\], values "
                                         rf"\[{value}\]\)"):
        EnergyLensModel().fit(df)
    model = quiet_fit(EnergyLensModel(), make_table(n=40, seed=4))
    with pytest.raises(ValueError, match=r"'tp' must be a whole number >= 1"):
        model.predict(df.assign(tp=1.5))


@pytest.mark.parametrize("value,words", [(np.nan, "missing or non-finite"), (-1.0, "<= 0")])
def test_a_bad_target_is_named_by_its_row_label(value, words):
    """A NaN target was reported by position (3) where every other error gives the row label,
    and a negative one named no row at all."""
    df = make_table(n=40, seed=3)
    df.index = range(100, 140)
    df.loc[103, "energy_j"] = value
    with pytest.raises(FitError, match=rf"{words}.*first at rows \[103\]"):
        EnergyLensModel().fit(df)


def test_a_form_negative_on_its_own_training_rows_says_so_at_fit(tmp_path):
    """The pooled linear baseline gives negative energy on 9 demo rows: every later predict
    over them raised, and the fit had said nothing of it."""
    df = energylens.read_profiles(energylens.datasets.demo_table_path())
    with pytest.warns(PoorFitWarning, match=r"negative or non-finite energy for 9 of its 1576 "
                                            r"training rows, which predict refuses"):
        m = energylens.LinearEnergyModel().fit(df)
    assert "NEGATIVE ENERGY on 9 of 1576 training rows" in m.fit_report()
    back = energylens.load_model(m.save(tmp_path / "linear.json"))  # the count is kept
    assert "NEGATIVE ENERGY on 9 of 1576 training rows" in back.fit_report()
    with pytest.raises(ValueError, match="gives a negative or non-finite energy_j for 9 row"):
        m.predict(df)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_fit(EnergyLensModel(), make_table(n=60, seed=5))  # bounded at 0: never evaluated
        EnergyLensModel().fit(make_table(n=60, seed=5))
    assert not any("negative" in str(w.message) for w in caught)
