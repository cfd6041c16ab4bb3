"""Closed-form models: kernels, fitting, identifiability, intervals, reports, grouping."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from sklearn.base import clone

import energylens
from energylens.exceptions import (
    ConvergenceWarning,
    IdentifiabilityWarning,
    NotFittedError,
    PoorFitWarning,
)
from energylens.models import (
    EnergyLensModel,
    GroupedModel,
    LinearEnergyModel,
    LogLinearEnergyModel,
    SweetSpotModel,
    WilkinsModel,
    energylens_jacobian,
    energylens_kernel,
    fit_groups,
)

THETA = np.array([0.01, 2e-6, 0.08, 0.05, 1.5, 0.02, 3e-6, 0.1, 0.06, 0.5, 0.05, 2.0])


def make_table(n=300, theta=THETA, noise=0.02, seed=0, tp=(1, 2, 4, 8), pp=(1, 2, 4)):
    """A canonical table generated from the EnergyLens form with multiplicative noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "model": "m", "gpu": "g",
        "tp": rng.choice(tp, n), "pp": rng.choice(pp, n),
        "batch_size": rng.choice([1, 4, 16, 64, 256], n).astype(float),
        "input_tokens": rng.choice([64, 256, 1024, 4096], n).astype(float),
        "output_tokens": rng.choice([16, 64, 256, 1024], n).astype(float),
    })
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    df["energy_j"] = energylens_kernel(V, theta) * np.exp(rng.normal(0, noise, n))
    return df


def quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("size", [False, True])
def test_energylens_jacobian_matches_finite_differences(size):
    rng = np.random.default_rng(1)
    V = {"t": rng.choice([1.0, 2, 4, 8], 40), "p": rng.choice([1.0, 2, 4], 40),
         "B": rng.uniform(1, 200, 40), "si": rng.uniform(10, 4000, 40),
         "so": rng.uniform(5, 1000, 40), "N": rng.uniform(1, 70, 40)}
    theta = THETA * rng.uniform(0.5, 1.5, 12)
    J = energylens_jacobian(V, theta, size)
    for i in range(len(V["t"])):
        Vi = {k: v[i:i + 1] for k, v in V.items()}
        num = approx_fprime(theta, lambda th, Vi=Vi: energylens_kernel(Vi, th, size)[0],
                            1e-7 * np.maximum(np.abs(theta), 1e-9))
        np.testing.assert_allclose(J[i], num, rtol=2e-4, atol=1e-8 * np.abs(num).max())


@pytest.mark.parametrize("model", [SweetSpotModel(), WilkinsModel(), LinearEnergyModel(),
                                   LogLinearEnergyModel()])
def test_baseline_jacobians_match_finite_differences(model):
    rng = np.random.default_rng(2)
    V = {"t": rng.choice([1.0, 2, 4], 20), "p": rng.choice([1.0, 2], 20),
         "B": rng.uniform(1, 64, 20), "si": rng.uniform(10, 2000, 20),
         "so": rng.uniform(5, 500, 20)}
    theta = np.array([p.init for p in model._param_specs()]) + rng.uniform(0.01, 0.1, len(model._param_specs()))
    if isinstance(model, LogLinearEnergyModel):
        theta = rng.uniform(-0.5, 0.5, 6)
    J = model._jacobian(V, theta)
    for i in range(5):
        Vi = {k: v[i:i + 1] for k, v in V.items()}
        num = approx_fprime(theta, lambda th, Vi=Vi: model._kernel(Vi, th)[0], 1e-7)
        np.testing.assert_allclose(J[i], num, rtol=1e-4, atol=1e-6 * np.abs(num).max())


def test_kernel_is_monotone_in_lengths():
    V = {"t": np.ones(5), "p": np.ones(5), "B": np.full(5, 8.0),
         "si": np.array([64.0, 128, 256, 512, 1024]), "so": np.full(5, 128.0)}
    assert np.all(np.diff(energylens_kernel(V, THETA)) > 0)
    V["si"], V["so"] = np.full(5, 512.0), np.array([16.0, 32, 64, 128, 256])
    assert np.all(np.diff(energylens_kernel(V, THETA)) > 0)


# --------------------------------------------------------------------------- recovery
def test_parameter_recovery_within_standard_errors():
    df = make_table(n=400, noise=0.02, seed=3)
    model = EnergyLensModel().fit(df)
    P = model.params_
    z = (P["value"].to_numpy() - THETA) / P["stderr"].to_numpy()
    assert np.all(np.abs(z) < 4), z
    assert np.median(np.abs(z)) < 1.5
    assert model.fit_stats_["converged"]
    assert model.fit_stats_["rank"] == 12
    pred = model.predict(df)
    assert 100 * np.mean(np.abs(pred - df.energy_j) / df.energy_j) < 3


def test_components_sum_to_prediction():
    df = make_table(n=120, seed=4)
    model = EnergyLensModel().fit(df)
    comp = model.predict_components(df)
    assert list(comp.columns) == ["prefill_j", "decode_j", "static_j"]
    np.testing.assert_allclose(comp.sum(axis=1), model.predict(df), rtol=1e-12)
    assert (comp.index == df.index).all()


def test_single_tp_fixes_tp_parameters_and_warns():
    df = make_table(n=200, tp=(2,), seed=5)
    with pytest.warns(IdentifiabilityWarning, match="c3.*c8|not identifiable"):
        model = EnergyLensModel().fit(df)
    P = model.params_
    for name in ("c3", "c8"):
        assert P.loc[name, "fixed"] and not P.loc[name, "identifiable"]
        assert P.loc[name, "value"] == 0.0
        assert "not identifiable from this data" in P.loc[name, "note"]
    assert P.loc[["c1", "c5", "c6"], "identifiable"].all()
    assert np.all(np.isfinite(model.predict(df)))
    assert "not identifiable" in model.fit_report()


def test_single_batch_and_stage_fixes_batch_parameter():
    # One batch and one pipeline stage: the micro-batch b = B is constant, so the weight-read
    # term c5/b cannot be told from the per-token compute c6 and is fixed, with the reason.
    df = make_table(n=150, seed=6, pp=(1,))
    df["batch_size"] = 32.0
    with pytest.warns(IdentifiabilityWarning):
        model = EnergyLensModel().fit(df)
    assert not model.params_.loc["c5", "identifiable"]
    assert "batch" in model.params_.loc["c5", "note"] or "B" in model.params_.loc["c5", "note"]
    assert np.all(np.abs(model.params_["value"]) < 1e3)


def test_single_batch_with_pipeline_stages_recovers_c5():
    # One batch but pipelines of 1, 2 and 4 stages: the micro-batch B/min(B, p) varies, so the
    # data identify c5 (the declared variable B alone does not decide; the Jacobian does).
    df = make_table(n=300, seed=6, noise=0.01)
    df["batch_size"] = 32.0
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    rng = np.random.default_rng(7)
    df["energy_j"] = energylens_kernel(V, THETA) * np.exp(rng.normal(0, 0.01, len(df)))
    model = quiet_fit(EnergyLensModel(), df)
    P = model.params_
    assert P.loc["c5", "identifiable"] and not P.loc["c5", "fixed"]
    assert model.fit_stats_["rank"] == 12
    assert abs(P.loc["c5", "value"] - THETA[4]) < 3 * P.loc["c5", "stderr"] + 0.05


def test_losses_and_robustness():
    df = make_table(n=200, noise=0.01, seed=7)
    dirty = df.copy()
    dirty.loc[dirty.index[:6], "energy_j"] *= 5  # six corrupted runs
    errs = {}
    for loss in ("relative", "log", "robust"):
        m = quiet_fit(EnergyLensModel(loss=loss), dirty)
        errs[loss] = np.median(np.abs(m.predict(df) / df.energy_j - 1))
    assert errs["robust"] < errs["relative"]
    assert errs["robust"] < 0.02
    m_abs = quiet_fit(EnergyLensModel(loss="absolute"), df)
    assert np.all(np.isfinite(m_abs.predict(df)))
    with pytest.raises(ValueError, match="'loss' parameter of EnergyLensModel must be a str among"):
        EnergyLensModel(loss="ls").fit(df)


def test_fixed_bounds_init_overrides():
    df = make_table(n=150, seed=8)
    m = quiet_fit(EnergyLensModel(fixed={"c4": 0.05}, bounds={"c3": (0.0, 0.05)},
                                  init={"c1": 0.01}), df)
    P = m.params_
    assert P.loc["c4", "value"] == 0.05 and P.loc["c4", "fixed"]
    assert P.loc["c4", "note"] == "fixed by the user"
    assert 0.0 <= P.loc["c3", "value"] <= 0.05
    assert P.loc["c3", "upper"] == 0.05
    with pytest.raises(ValueError, match="unknown parameters"):
        EnergyLensModel(fixed={"c99": 1.0}).fit(df)


def test_convergence_warning_on_budget_and_bound():
    df = make_table(n=100, seed=9)
    with pytest.warns(ConvergenceWarning):
        EnergyLensModel(max_nfev=1, init={"c1": 1.0}).fit(df)
    with pytest.warns(ConvergenceWarning, match="ended at a bound"):
        EnergyLensModel(bounds={"c5": (0.0, 0.5)}).fit(df)


def test_poor_fit_warns_and_reports():
    rng = np.random.default_rng(10)
    df = make_table(n=80, seed=10)
    df["energy_j"] = rng.lognormal(3, 1.5, len(df))  # energy unrelated to the configuration
    with pytest.warns(PoorFitWarning, match="poor fit"):
        m = EnergyLensModel().fit(df)
    assert "POOR FIT" in m.fit_report()
    assert m.fit_stats_["mape_pct"] > 25


def test_fit_with_explicit_y_and_array_input():
    df = make_table(n=100, seed=11)
    X = df[["tp", "pp", "batch_size", "input_tokens", "output_tokens"]].to_numpy(float)
    m1 = EnergyLensModel().fit(df)
    m2 = EnergyLensModel().fit(X, df.energy_j.to_numpy())
    np.testing.assert_allclose(m1.predict(df), m2.predict(X), rtol=1e-6)
    with pytest.raises(ValueError, match="n_features = 3"):
        m2.predict(X[:, :3])
    with pytest.raises(ValueError, match="must be > 0"):
        m2.predict(np.c_[X[:, :2], np.zeros(len(X)), X[:, 3:]])


def test_not_fitted_error():
    with pytest.raises(NotFittedError):
        EnergyLensModel().predict(make_table(n=5))
    with pytest.raises(ValueError):
        _ = EnergyLensModel().params_


def test_missing_columns_named():
    df = make_table(n=20).drop(columns=["tp"])
    with pytest.raises(ValueError, match=r"\['tp'\]"):
        EnergyLensModel().fit(df)


def test_aic_bic_prefer_true_structure():
    df = make_table(n=300, seed=12)
    full = EnergyLensModel().fit(df)
    lin = quiet_fit(LinearEnergyModel(), df)
    assert full.aic_ < lin.aic_ and full.bic_ < lin.bic_
    assert full.bic_ - full.aic_ == pytest.approx(12 * (np.log(300) - 2))


def test_report_and_html():
    df = make_table(n=150, seed=13)
    m = EnergyLensModel().fit(df)
    text = m.fit_report()
    for name in [f"c{i}" for i in range(1, 13)]:
        assert f"    {name}" in text
    assert "J/token" in text and "AIC" in text and "[[Correlations]]" in text
    html = m._repr_html_()
    assert html.count("<tr>") == 13 and "prefill energy per prompt token" in html
    assert "not fitted" in EnergyLensModel()._repr_html_()
    C = m.correlation_
    np.testing.assert_allclose(np.diag(C), 1.0)


# --------------------------------------------------------------------------- intervals
def test_prediction_interval_coverage():
    train = make_table(n=200, noise=0.03, seed=14)
    test = make_table(n=2000, noise=0.03, seed=15)
    m = EnergyLensModel().fit(train)
    pi = m.predict_interval(test, level=0.9)
    inside = (test.energy_j >= pi["lower"]) & (test.energy_j <= pi["upper"])
    assert 0.85 <= inside.mean() <= 0.95
    ci = m.predict_interval(test, level=0.9, kind="confidence")
    assert np.all(ci["upper"] - ci["lower"] <= pi["upper"] - pi["lower"] + 1e-12)
    assert np.all(pi["lower"] <= pi["energy_j"]) and np.all(pi["energy_j"] <= pi["upper"])


def test_bootstrap_interval_agrees_with_delta_method():
    train = make_table(n=150, noise=0.03, seed=16)
    m = EnergyLensModel().fit(train)
    X = train.head(20)
    d = m.predict_interval(X, kind="confidence")
    b = m.predict_interval(X, kind="confidence", method="bootstrap", n_boot=60, random_state=0)
    ratio = b["stderr"] / d["stderr"]
    assert 0.5 < np.median(ratio) < 2.0
    with pytest.raises(ValueError, match="level"):
        m.predict_interval(X, level=1.5)


# --------------------------------------------------------------------------- sizes and groups
def test_size_covariate_fits_across_models():
    frames = []
    for i, n_b in enumerate([1.0, 8.0, 70.0]):
        df = make_table(n=120, seed=20 + i)
        V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
             "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy(),
             "N": np.full(len(df), n_b)}
        df["energy_j"] = energylens_kernel(V, THETA, size=True)
        df["params_b"] = n_b
        df["model"] = f"m{i}"
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    m = EnergyLensModel(size_covariate="params_b").fit(df)
    assert np.mean(np.abs(m.predict(df) / df.energy_j - 1)) < 1e-3
    with pytest.raises(ValueError, match="params_b"):
        EnergyLensModel(size_covariate="params_b").fit(df.drop(columns="params_b"))


def test_fit_groups_parallel_and_dispatch():
    a = make_table(n=80, seed=30).assign(model="a")
    b = make_table(n=80, theta=THETA * 2, seed=31).assign(model="b")
    c = make_table(n=2, seed=32).assign(model="c")
    df = pd.concat([a, b, c], ignore_index=True)
    g = fit_groups(df, by=["model", "gpu"], n_jobs=2)
    assert set(g.models_) == {("a", "g"), ("b", "g")}
    row_c = g.groups_.set_index("model").loc["c"]
    assert not row_c["fitted"] and "fewer than" in row_c["error"]
    ab = df[df.model != "c"]
    np.testing.assert_allclose(g.predict(ab[ab.model == "b"]),
                               g.models_[("b", "g")].predict(ab[ab.model == "b"]))
    assert g.groups_.set_index("model").loc[["a", "b"], "mape_pct"].max() < 4
    P = g.params_
    assert set(P["model"]) == {"a", "b"} and len(P) == 24
    ratio = (P[P.model == "b"].set_index("parameter")["value"]
             / P[P.model == "a"].set_index("parameter")["value"])
    assert ratio.loc[["c1", "c5", "c6", "c12"]].between(1.8, 2.2).all()
    with pytest.raises(ValueError, match="No fitted model for group"):
        g.predict(df[df.model == "c"])
    pi = g.predict_interval(ab.head(10))
    assert list(pi.index) == list(ab.head(10).index)
    assert isinstance(clone(GroupedModel(EnergyLensModel())), GroupedModel)


# --------------------------------------------------------------------------- baselines
def test_wilkins_and_loglinear_recover_parameters():
    rng = np.random.default_rng(40)
    df = pd.DataFrame({"tp": rng.choice([1, 2, 4], 100), "pp": rng.choice([1, 2], 100),
                       "batch_size": rng.choice([1.0, 8, 64], 100),
                       "input_tokens": rng.uniform(10, 2000, 100),
                       "output_tokens": rng.uniform(10, 1000, 100)})
    y = 0.02 * df.input_tokens + 0.3 * df.output_tokens + 1e-4 * df.input_tokens * df.output_tokens
    w = WilkinsModel().fit(df, y)
    np.testing.assert_allclose(w.coef_, [0.02, 0.3, 1e-4], rtol=1e-6)
    y2 = np.exp(1.0) * df.tp**0.2 * df.pp**0.1 * df.batch_size**-0.5 * df.input_tokens**0.3 \
        * df.output_tokens**0.9
    ll = LogLinearEnergyModel().fit(df, y2)
    np.testing.assert_allclose(ll.coef_, [1.0, 0.2, 0.1, -0.5, 0.3, 0.9], atol=1e-6)
    lin = quiet_fit(LinearEnergyModel(), df, y)
    assert np.all(np.isfinite(lin.predict(df)))


def test_sweetspot_closed_form_optimum_and_surface():
    si, so = np.meshgrid([64, 128, 256, 512, 1024, 2048, 4096], [16, 32, 64, 128, 256, 512, 1024])
    df = pd.DataFrame({"input_tokens": si.ravel().astype(float),
                       "output_tokens": so.ravel().astype(float)})
    theta = np.array([0.1, 2e-7, 1e-5, 1e-3, 2e-5, 0.5])  # t0..t5
    e = (theta[1] * df.input_tokens**2 + theta[3] * df.input_tokens + theta[5]) / df.output_tokens \
        + theta[2] * df.input_tokens + theta[4] * df.output_tokens + theta[0]
    m = SweetSpotModel().fit(df, e * df.output_tokens)
    np.testing.assert_allclose(m.coef_, theta, rtol=1e-6)
    np.testing.assert_allclose(m.predict_per_token(df), e, rtol=1e-8)
    grid = np.linspace(1, 5000, 200001)
    for s_in in (64.0, 1000.0, 4096.0):
        per_tok = m._per_token(s_in, grid)
        assert m.optimal_output_tokens(s_in) == pytest.approx(grid[np.argmin(per_tok)], rel=1e-3)
    surf = m.efficiency_surface([64, 512, 4096], [16, 256, 1024])
    assert surf.shape == (3, 3) and surf.index.name == "input_tokens"
    spot = m.sweet_spot([64, 256, 1024, 4096], [16, 64, 256, 1024], tolerance=0.9)
    full = m.efficiency_surface([64, 256, 1024, 4096], [16, 64, 256, 1024])
    assert spot["tokens_per_joule"] == pytest.approx(full.to_numpy().max())
    assert full.loc[spot["input_tokens"], spot["output_tokens"]] == spot["tokens_per_joule"]
    assert (spot["region"]["tokens_per_joule"] >= 0.9 * spot["tokens_per_joule"]).all()
    assert spot["max_to_min_ratio"] > 1
    comp = m.predict_components(df)
    np.testing.assert_allclose(comp.sum(axis=1), m.predict(df), rtol=1e-10)


def test_sweetspot_warns_when_settings_other_than_lengths_vary():
    from energylens import EnergyLensWarning

    si, so = np.meshgrid([64.0, 512, 2048], [16.0, 128, 1024])
    one = pd.DataFrame({"model": "m", "gpu": "g", "tp": 1, "batch_size": 32.0,
                        "running_batch": 32.0, "input_tokens": si.ravel(),
                        "output_tokens": so.ravel()})
    y = 0.1 * one.output_tokens + 1e-3 * one.input_tokens + 2e-6 * one.input_tokens**2
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyLensWarning)
        SweetSpotModel().fit(one, y)  # one configuration: no warning
    two = pd.concat([one, one.assign(tp=2, batch_size=128.0, running_batch=100.0)],
                    ignore_index=True)
    with pytest.warns(EnergyLensWarning, match=r"differ in tp \(1, 2\), batch_size \(32, 128\), "
                                               r"running_batch \(32 to 100\)") as rec:
        SweetSpotModel().fit(two, pd.concat([y, 2 * y], ignore_index=True))
    assert {r.filename for r in rec} == {__file__}  # every warning points at the caller
    # a running batch that moves by a few percent (measurement noise) is one setting
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyLensWarning)
        SweetSpotModel().fit(one.assign(running_batch=np.linspace(31, 33, len(one))), y)


def test_models_pickle():
    df = make_table(n=80, seed=50)
    m = EnergyLensModel().fit(df)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m.predict(df), m2.predict(df))


def test_top_level_exports():
    for name in ("EnergyLensModel", "SweetSpotModel", "WilkinsModel", "load_model",
                 "read_profiles", "fit_groups"):
        assert hasattr(energylens, name)


@pytest.mark.realdata
def test_real_data_fits_give_finite_parameters(real_data):
    from energylens.readers import read_mlenergy_leaderboard, read_wilkins

    mle = read_mlenergy_leaderboard(real_data / "mlenergy_v2")
    errors = []
    for _, g in mle.groupby(["model", "gpu"]):
        m = quiet_fit(EnergyLensModel(), g)
        assert np.all(np.isfinite(m.coef_)) and np.all(np.isfinite(m.predict(g)))
        errors.append(np.mean(np.abs(m.predict(g) / g.energy_j - 1)))
    assert 100 * np.mean(errors) < 10
    wk = read_wilkins(real_data / "wilkins2024", experiments=("input-test",))
    for _, g in wk.groupby(["model", "gpu"]):
        m = quiet_fit(SweetSpotModel(), g)
        assert np.all(np.isfinite(m.coef_))
        assert 100 * np.mean(np.abs(m.predict(g) / g.energy_j - 1)) < 10


def test_identify_keeps_an_independent_column_over_a_nearly_collinear_one():
    from energylens.models.least_squares import identify

    a = np.array([1.0, 1.0])
    J = np.column_stack([a, a * [1.0, 1.01], [1.0, 4.0]])  # rank 2; columns 0 and 1 nearly equal
    # Preference alone (column 2 fixed first) would keep the two near-copies.
    assert identify(J, order=[2, 1, 0]) == [1]
    assert identify(J, order=[0, 1, 2]) == [0]
    # Exactly collinear columns: the less preferred one goes, whatever the order says.
    J2 = np.column_stack([a, 2 * a, [1.0, 4.0]])
    assert identify(J2, order=[0, 1, 2]) == [0]
    assert identify(J2, order=[1, 0, 2]) == [1]


def test_two_rows_differing_in_batch_keep_a_batch_term():
    """Two measurements at batch 64 and 256 (one prompt length, output lengths a hair apart)
    must be explained by a term that varies with the batch, not by two near-copies of a
    per-token constant: the third batch size is then predicted within a few percent."""
    rows = pd.DataFrame({"model": "m", "gpu": "g", "tp": 1, "pp": 1,
                         "batch_size": [64.0, 256.0, 32.0], "input_tokens": 128.0,
                         "output_tokens": [65.06, 64.96, 65.54]})
    truth = 0.25 * rows["output_tokens"] + 600.0 / rows["batch_size"]  # J per request
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(rows.iloc[:2], truth.iloc[:2])
        pred = m.predict(rows.iloc[2:])
    free = m.params_.index[m.params_["identifiable"]]
    assert {"c5", "c10"} & set(free)
    assert abs(pred[0] / truth.iloc[2] - 1) < 0.05


def test_a_column_absent_from_training_is_reported_not_silent():
    """A table without ``pp`` is fitted with the schema's default (1): the report says so."""
    df = make_table(n=40, seed=3)
    df = df[df["pp"] == 1].drop(columns=["pp"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(df)
        full = EnergyLensModel().fit(make_table(n=40, seed=3))
    assert "absent from the training table, taken at the schema's default: pp = 1" in m.fit_report()
    assert "absent from" not in full.fit_report()
