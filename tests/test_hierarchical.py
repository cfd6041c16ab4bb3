"""HierarchicalEnergyModel on tables generated from its own form (no public data needed)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import energylens as el
from energylens.exceptions import CatalogueError, ExtrapolationWarning, ModelFileError
from energylens.models.hierarchical import form_table
from energylens.models.hierarchical.synthetic import TRUE_POPULATION

MODELS = ["Llama-3.1-8B", "Qwen3-8B", "Mistral-7B", "Qwen3-14B", "Llama-3.1-70B", "gemma-2-9b"]
GPUS = ["H100-SXM", "A100-80GB", "L40S", "H200", "B200"]


def _fit(model, table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(table)


@pytest.fixture(scope="module")
def recovery():
    table, truth = form_table(MODELS, GPUS, rows_per_group=25, seed=3, noise=0.01, spread=0.3)
    return table, truth, _fit(el.HierarchicalEnergyModel(), table)


def test_parameter_recovery(recovery):
    table, truth, m = recovery
    assert m.structure_ == "rich" and m.converged_
    assert np.mean(np.abs(m.predict(table) / table["energy_true_j"] - 1)) < 0.01
    assert m.sigma_ == pytest.approx(0.01, rel=0.25)
    # each group's parameters come back (the truth deviates s, am, nu, tau1 by sd 0.3)
    g = m.groups_.reset_index().merge(truth, on=["model", "gpu"], suffixes=("", "_true"))
    for p, tol in (("s", 0.1), ("am", 0.2), ("nu", 0.35), ("tau1", 0.35)):
        err = np.abs(np.log(g[p] / g[f"{p}_true"]))
        assert np.median(err) < tol, p
        assert np.corrcoef(np.log(g[p]), np.log(g[f"{p}_true"]))[0, 1] > 0.95, p
    # the spreads between groups are estimated near the truth, and pooled where there is none
    tau = m.tau_["tau"]
    for p in ("s", "am", "nu", "tau1"):
        assert 0.15 < tau[("model x gpu", p)] < 0.6, p
    assert tau[("model x gpu", "ac")] < 0.05
    # population values lie within two standard errors of the truth where identified
    P = m.params_
    for name, r in P[P["identifiable"]].iterrows():
        truth_value = TRUE_POPULATION[name.split("[")[0]]
        assert abs(np.log(r["value"] / truth_value)) < 2 * r["log_sd"] + 0.05, name
    assert P.loc["dc", "value"] == pytest.approx(0.8, abs=0.05)


def test_prior_driven_parameters_are_flagged(recovery):
    P = recovery[2].params_
    # no pipeline, no expert parallelism, no recorded request count: the prior speaks
    for name in ("cpp", "lep", "kappa"):
        assert not P.loc[name, "identifiable"] and "prior-driven" in P.loc[name, "note"], name
    assert P.loc["s", "fixed"] and not P.loc["s", "identifiable"]
    assert {"value", "stderr", "unit", "meaning"} <= set(P.columns)


def test_shrinkage_small_and_large_groups():
    rows = {(m, g): 10 for m in MODELS[:4] for g in GPUS[:4]}
    rows[(MODELS[4], GPUS[0])] = 2
    rows[(MODELS[5], GPUS[1])] = 200
    table, _ = form_table(MODELS, GPUS, rows_per_group=rows, seed=5, noise=0.02, spread=0.3)
    m = _fit(el.HierarchicalEnergyModel(), table)
    G = m.groups_
    small, large = G.loc[(MODELS[4], GPUS[0])], G.loc[(MODELS[5], GPUS[1])]
    assert small["n_rows"] == 2 and large["n_rows"] == 200
    # two rows: the group's shape comes from the population (deviations shrunk away)
    assert min(small["am_shrink"], small["nu_shrink"], small["tau1_shrink"]) > 0.5
    # two hundred rows: fitted almost on its own (in what deviates between groups)
    assert max(large[f"{p}_shrink"] for p in ("s", "am", "nu", "tau1")) < 0.1
    rows_large = table[(table["model"] == MODELS[5]) & (table["gpu"] == GPUS[1])]
    assert np.mean(np.abs(m.predict(rows_large) / rows_large["energy_true_j"] - 1)) < 0.01
    # the scale is every group's own, even from two rows
    assert small["s_shrink"] < 0.1 and small["am_log_sd"] > large["am_log_sd"]


def test_pooling_options():
    table, _ = form_table(MODELS[:4], GPUS[:3], rows_per_group=8, seed=7, spread=0.3)
    fits = {p: _fit(el.HierarchicalEnergyModel(pooling=p), table) for p in ("partial", "none",
                                                                             "complete")}
    assert fits["complete"].tau_.empty and fits["complete"].structure_ == "complete"
    assert not any(c.endswith("_shrink") for c in fits["complete"].groups_.columns)
    none = fits["none"].tau_
    assert (none["tau"] == 3.0).all() and not none["estimated"].any()
    assert set(none.index.get_level_values("parameter")) == {"pi0", "am", "ac", "tau1", "nu"}
    err = {p: np.mean(np.abs(f.predict(table) / table["energy_true_j"] - 1)) for p, f in fits.items()}
    assert err["partial"] < err["complete"] and err["none"] < err["complete"]
    with pytest.raises(ValueError, match="pooling"):
        el.HierarchicalEnergyModel(pooling="some").fit(table)


def test_zero_shot_unseen_model_and_gpu_widen_the_interval():
    table, _ = form_table(MODELS, GPUS, rows_per_group=12, seed=11, spread=0.15)
    held = (table["model"] == "Qwen3-14B") | (table["gpu"] == "H200")
    m = _fit(el.HierarchicalEnergyModel(), table[~held])
    test = table[held]
    with pytest.warns(ExtrapolationWarning, match="not seen"):
        pi = m.predict_interval(test, level=0.9)
    assert np.all(np.isfinite(pi["energy_j"]) & (pi["energy_j"] > 0))
    assert np.mean(np.abs(pi["energy_j"] / test["energy_true_j"] - 1)) < 0.35
    seen = _quiet(m.predict_interval, table[~held].iloc[:50])
    assert np.median(pi["upper"] / pi["lower"]) > 1.5 * np.median(seen["upper"] / seen["lower"])
    assert pi["extrapolated"].all() and not seen["extrapolated"].any()
    by = pi["extrapolated_by"]
    assert by[test["model"] == "Qwen3-14B"].str.contains("model").all()
    assert by[test["gpu"] == "H200"].str.contains("gpu").all()
    cover = np.mean((test["energy_j"] >= pi["lower"]) & (test["energy_j"] <= pi["upper"]))
    assert cover > 0.7


def test_other_spellings_of_a_trained_gpu_or_model_are_that_one(recovery):
    table, _, m = recovery
    rows = table[(table["model"] == "Llama-3.1-8B") & (table["gpu"] == "H100-SXM")].head(3)
    base = _quiet(m.predict_interval, rows)
    for spelt in ({"gpu": "NVIDIA H100 80GB HBM3"}, {"gpu": "h100"},
                  {"model": "meta-llama/llama-3.1-8b"}):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ExtrapolationWarning)  # not a new GPU or model
            pi = m.predict_interval(rows.assign(**spelt))
        pd.testing.assert_frame_equal(pi, base)
    # another checkpoint of the same architecture (FP8 weights) is not the trained one
    with pytest.warns(ExtrapolationWarning, match="model"):
        fp8 = m.predict(rows.assign(model="Llama-3.1-8B-FP8"))
    assert not np.allclose(fp8, base["energy_j"])
    # nor is a named fine-tune: a Thinking checkpoint runs its own workloads (a bare name,
    # as trained here, may have been any checkpoint of the architecture)
    with pytest.warns(ExtrapolationWarning, match="model 'Llama-3.1-8B-Thinking' not seen"):
        m.predict(rows.assign(model="Llama-3.1-8B-Thinking"))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_unknown_model_or_descriptor_is_a_clear_error():
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=5, seed=1)
    m = _fit(el.HierarchicalEnergyModel(), table)
    new = table.iloc[:2].assign(model="acme/secret-llm-13b")
    with pytest.raises(CatalogueError, match="register_models"):
        m.predict(new)
    from energylens.core.catalogue import register_models, reset_catalogue

    register_models(pd.DataFrame({"name": ["acme-partial"], "params_b": [7.0]}))
    try:
        with pytest.raises(CatalogueError, match="model_layers.*register_models"):
            m.predict(table.iloc[:2].assign(model="acme-partial"))
    finally:
        reset_catalogue()


def test_predictions_are_finite_and_positive_far_outside():
    table, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=10, seed=2)
    m = _fit(el.HierarchicalEnergyModel(), table)
    far = table.iloc[:4].assign(batch_size=[1.0, 4096.0, 1e5, 2.0], running_batch=np.nan,
                                tp=[1, 8, 64, 1], output_tokens=[1.0, 1e5, 10.0, 3.0])
    with pytest.warns(ExtrapolationWarning, match="outside the training data"):
        pi = m.predict_interval(far)
    assert np.all(np.isfinite(pi[["energy_j", "lower", "upper"]].to_numpy()))
    assert (pi["energy_j"] > 0).all() and (pi["lower"] > 0).all()
    inside = _quiet(m.predict_interval, table.iloc[:4])
    assert (pi["log_sd"] > inside["log_sd"]).all()
    comp = _quiet(m.predict_components, far)
    np.testing.assert_allclose(comp[["prefill_j", "decode_j", "static_j"]].sum(axis=1),
                               pi["energy_j"], rtol=1e-10)


@pytest.mark.filterwarnings("ignore::energylens.ExtrapolationWarning")
def test_persistence_round_trip_is_bit_exact(tmp_path):
    table, _ = form_table(MODELS[:3], GPUS[:3], rows_per_group=8, seed=4)
    m = _fit(el.HierarchicalEnergyModel(), table)
    path = m.save(tmp_path / "hier.json")
    back = el.load_model(path)
    assert type(back) is el.HierarchicalEnergyModel
    new = table.assign(output_tokens=table["output_tokens"] * 1.1)
    np.testing.assert_array_equal(back.predict(new), m.predict(new))
    pd.testing.assert_frame_equal(back.predict_interval(new), m.predict_interval(new), check_exact=True)
    pd.testing.assert_frame_equal(back.groups_, m.groups_)
    pd.testing.assert_frame_equal(back.params_, m.params_)
    assert back.fit_report() == m.fit_report()
    el.models.save_model(back, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads(path.read_text())


def _edited(packed: dict, i: int, value: float) -> dict:
    """A packed float array of a model file with its i-th stored value replaced."""
    import base64

    vals = np.frombuffer(base64.b64decode(packed["float64"]), dtype="<f8").copy()
    vals[i] = value
    return {**packed, "float64": base64.b64encode(vals.tobytes()).decode("ascii")}


@pytest.mark.parametrize("edit", ["coef-text", "coef-huge", "no-posterior", "negative-variance",
                                  "column-index", "terms", "class", "truncated", "placeholders"])
def test_tampered_files_are_refused(tmp_path, edit):
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=4)
    path = _fit(el.HierarchicalEnergyModel(), table).save(tmp_path / "hier.json")
    data = json.loads(path.read_text())
    extra = data["extra"]
    if edit == "coef-text":
        extra["coef"]["float64"] = "not base64!"
    elif edit == "coef-huge":
        extra["coef"] = _edited(extra["coef"], 1, 1e300)
    elif edit == "no-posterior":
        del extra["posterior"]
    elif edit == "negative-variance":
        extra["posterior"]["cov_global"] = _edited(extra["posterior"]["cov_global"], 0, -1.0)
    elif edit == "column-index":
        extra["design"]["levels"][0]["col"][0][0] = 10**6
    elif edit == "terms":
        data["fit"]["terms"]["drain"] = "yes"
    elif edit == "truncated":
        extra["posterior"]["coupling"]["float64"] = extra["posterior"]["coupling"]["float64"][:-12]
    elif edit == "placeholders":
        data["fit"]["assumed_input_tokens"] = {"chat": ["256"]}
    else:
        data["class"] = "NoSuchModel"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError):
        el.load_model(path)


def test_not_fitted_and_bad_input():
    m = el.HierarchicalEnergyModel()
    with pytest.raises(el.NotFittedError):
        m.predict(pd.DataFrame({"model": ["Llama-3.1-8B"], "gpu": ["H100"]}))
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=4, seed=1)
    with pytest.raises(ValueError, match="energy_j.*> 0"):
        m.fit(table.assign(energy_j=-1.0))
    with pytest.raises(ValueError, match="energy_j.*> 0"):
        m.fit(table.assign(energy_j=np.nan))
    with pytest.raises(ValueError, match="DataFrame"):
        m.fit(table[["tp", "batch_size"]].to_numpy())
    with pytest.raises(ValueError, match="levels"):
        el.HierarchicalEnergyModel(levels=[(("gpu",), ("rho",))]).fit(table)
    with pytest.raises(ValueError, match="lacks"):
        el.HierarchicalEnergyModel(by=("model", "host")).fit(table)
    with pytest.raises(el.FitError, match="at least 1 row.*n_samples = 0"):
        m.fit(table.head(0))
    # a row without its model or GPU name: said so, not a TypeError from the level keys
    no_name = table.astype({"gpu": object})
    no_name.loc[no_name.index[2], "gpu"] = np.nan
    with pytest.raises(ValueError, match=r"column 'gpu' has 1 missing or empty value\(s\) "
                                         r"\(first at rows \[2\]\)"):
        m.fit(no_name)
    # tables joined from sources that record ep and sources that do not: said how to fill
    joined = table.assign(ep=[np.nan] * 3 + [1.0] * (len(table) - 3))
    with pytest.raises(ValueError, match=r"'ep' has 3 missing.*fillna\(1\)"):
        m.fit(joined)
    fitted = _fit(el.HierarchicalEnergyModel(), table)
    with pytest.raises(ValueError, match="column 'model' has 1 missing"):
        fitted.predict(table.assign(model=["", *table["model"].iloc[1:]]))


def test_a_table_that_informs_no_parameter_says_so():
    from energylens.exceptions import IdentifiabilityWarning

    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=5, seed=1)
    with pytest.warns(IdentifiabilityWarning, match="1 row.*prior"):
        one = el.HierarchicalEnergyModel().fit(table.head(1))
    assert not one.params_["identifiable"].any()
    assert "warning (IdentifiabilityWarning): 1 row(s) inform none" in one.fit_report()
    with warnings.catch_warnings():  # a few rows more inform some parameters: no warning
        warnings.simplefilter("error", IdentifiabilityWarning)
        some = el.HierarchicalEnergyModel().fit(table)
    assert some.params_["identifiable"].any()


def test_reports():
    table, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=6, seed=8)
    m = _fit(el.HierarchicalEnergyModel(levels="default"), table)
    text = m.fit_report()
    for part in ("[[Population]]", "[[Spread between level values]]", "[[Groups]]", "s_shrink"[:1]):
        assert part in text
    html = m._repr_html_()
    assert "<table>" in html and "Population" in html and "Groups" in html
    assert m.structure_ == "default"
    assert "s_shrink" in m.groups_.columns


def test_workers_of_a_distributed_backend_are_used(monkeypatch):
    # Ray is not installed here: its joblib backend class is named RayBackend. Under it, an
    # unset n_jobs must mean every worker (never a silent in-process loop).
    import energylens.models.grouped as grouped
    import energylens.models.hierarchical.estimator as est

    class RayBackend:
        pass

    monkeypatch.setattr(grouped, "get_active_backend", lambda: (RayBackend(), None))
    monkeypatch.setattr(est, "effective_n_jobs", lambda n: 3 if n == -1 else 1)
    table, _ = form_table(MODELS[:3], GPUS[:3], rows_per_group=4, seed=1)
    calls = []
    import energylens.models.hierarchical.pooling as pooling

    def fake_parallel(n_jobs=None):
        calls.append(n_jobs)
        return lambda jobs: [f(*a, **k) for f, a, k in jobs]

    monkeypatch.setattr(pooling, "Parallel", fake_parallel)
    m = _fit(el.HierarchicalEnergyModel(), table)
    assert m.n_chunks_ == 3 and calls and set(calls) == {-1}


@pytest.mark.slow
def test_fit_on_a_dask_cluster_matches_local():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    from joblib import parallel_config

    table, _ = form_table(MODELS[:3], GPUS[:3], rows_per_group=6, seed=1)
    local = _fit(el.HierarchicalEnergyModel(), table)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        with parallel_config(backend="dask"):
            remote = _fit(el.HierarchicalEnergyModel(), table)
    assert local.n_chunks_ == 1 and remote.n_chunks_ == 2
    np.testing.assert_allclose(remote.coef_, local.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(remote.predict(table), local.predict(table), rtol=1e-10)


def test_new_workload_and_labels_the_table_lacks():
    table, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=8, seed=6)
    table["precision"] = np.where(table["model"] == MODELS[0], "fp8", "bf16")
    m = _fit(el.HierarchicalEnergyModel(), table)
    assert "precision" in m.group_columns_
    # a workload never seen takes the mean of the known workloads' latent values
    new = table.iloc[:3].assign(workload="summarise")
    with pytest.warns(ExtrapolationWarning, match="workload"):
        p = m.predict(new)
    assert np.all(np.isfinite(p) & (p > 0))
    # without a precision column the catalogue's (bf16 here) is used; a missing source is one
    rows = table[table["model"] == MODELS[1]].iloc[:4]
    same = _quiet(m.predict, rows.drop(columns=["precision", "source"]))
    np.testing.assert_allclose(same, m.predict(rows), rtol=1e-12)


def test_every_way_a_row_leaves_the_training_data_is_flagged():
    table, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=8, seed=6)
    pair = (table["model"] == MODELS[2]) & (table["gpu"] == GPUS[1])
    m = _fit(el.HierarchicalEnergyModel(), table[~pair])
    inside = _quiet(m.predict_interval, table[~pair])
    assert not inside["extrapolated"].any()  # the training rows themselves: never flagged
    rows = table[~pair].iloc[:2]

    def flagged(x, by, match):
        with pytest.warns(ExtrapolationWarning, match=match):
            pi = m.predict_interval(x)
        assert pi["extrapolated"].all() and pi["extrapolated_by"].str.contains(by).all()
        return pi

    # a model and a GPU both measured, but never together: the pair's deviation is unknown
    flagged(table[pair].iloc[:2], "model x gpu", "model x gpu 'Mistral-7B / A100-80GB' not seen")
    # no workload given where training had several: the mean of the trained workloads
    flagged(rows.drop(columns="workload"), "workload", r"workload \(none given\) not seen")
    # a missing value reads as a missing column (it was a TypeError joining level keys)
    gaps = flagged(rows.assign(workload=[np.nan, None]), "workload", r"\(none given\)")
    np.testing.assert_allclose(gaps["energy_j"], _quiet(m.predict, rows.drop(columns="workload")),
                               rtol=1e-12)
    # a precision the training rows never ran (read by the catalogue: bf16 there)
    flagged(rows.assign(precision="fp8"), "precision", "precision 'fp8' not seen.*seen: bf16")
    # prompts far longer than any measured one, and the interval widens with the distance
    long = flagged(rows.assign(input_tokens=1e6), "input_tokens", "input_tokens up to 1e\\+06")
    assert (long["log_sd"].to_numpy() > inside["log_sd"].iloc[:2].to_numpy()).all()


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 1), (1, 2, 5), (2, 2, 3)])
@pytest.mark.parametrize("pooling", ["partial", "none", "complete"])
def test_tiny_tables_fit_with_finite_intervals(shape, pooling):
    # fewer rows than unknowns: the residual sd stays at its floor and the fit stays solvable
    n_models, n_gpus, rows = shape
    table, _ = form_table(MODELS[:n_models], GPUS[:n_gpus], rows_per_group=rows, seed=2)
    m = _fit(el.HierarchicalEnergyModel(pooling=pooling), table)
    assert m.sigma_ >= 0.005
    pi = m.predict_interval(table)
    assert np.all(np.isfinite(pi[["energy_j", "lower", "upper"]].to_numpy()))
    assert (pi["lower"] < pi["energy_j"]).all() and (pi["energy_j"] < pi["upper"]).all()


def test_measured_phases_are_fitted_jointly():
    from energylens.exceptions import FitError

    t, _ = form_table(["Llama-3.1-8B", "Qwen3-8B", "Llama-3.1-70B"], ["H100-SXM", "A100-80GB"],
                      rows_per_group=12, seed=0, phases=True)
    share = (t["prefill_true_j"] / t["energy_true_j"]).to_numpy()
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for phases in (False, "auto"):
            m = el.HierarchicalEnergyModel(phases=phases).fit(t)
            c = m.predict_components(t)
            pred = (c["prefill_j"] / c[["prefill_j", "decode_j", "static_j"]].sum(axis=1)).to_numpy()
            errors[phases] = float(np.median(np.abs(pred - share)))
            assert np.all(m.predict(t) > 0)
    assert m.phases_ == len(t)  # every row's split was used
    assert m.groups_["n_rows"].sum() == len(t)  # counted once, not once per phase
    assert f"rows {len(t)} ({2 * len(t)} observations" in m.fit_report()  # it said rows {2n}
    assert errors["auto"] < 0.002 and errors["auto"] <= errors[False]
    with pytest.raises(FitError, match="phases=True"):
        el.HierarchicalEnergyModel(phases=True).fit(t.drop(columns=["prefill_energy_j"]))


def test_an_energy_other_than_the_sum_of_its_measured_phases_is_fitted_as_given():
    """Rows with a split were fitted from their phases alone: a y (or energy_j) that the
    phases do not sum to was silently dropped, and the model answered for another total. Now
    such rows are fitted on the energy given (with a warning naming them), or refused under
    phases=True."""
    from energylens.exceptions import FitError

    t, _ = form_table(["Llama-3.1-8B", "Qwen3-8B"], ["H100-SXM"], rows_per_group=6, seed=0,
                      phases=True)
    t.index = [f"r{i}" for i in range(len(t))]
    t["energy_j"] = t["prefill_energy_j"] + t["decode_energy_j"]
    with pytest.raises(FitError, match=r"phases=True\): energy_j \(or y\) differs from "
                                       r"prefill_energy_j \+ decode_energy_j by more than 2% in 12 "
                                       r"row\(s\) \(rows \['r0', 'r1'"):
        el.HierarchicalEnergyModel(phases=True).fit(t, y=2 * t["energy_j"])
    with pytest.warns(el.EnergyLensWarning, match=r"in 12 row\(s\).*fitted on their energy") as w:
        doubled = el.HierarchicalEnergyModel().fit(t, y=2 * t["energy_j"])
    assert [x.filename for x in w if "phases sum" in str(x.message)] == [__file__]
    assert doubled.phases_ == 0
    assert np.median(doubled.predict(t) / t["energy_j"]) == pytest.approx(2, rel=0.02)
    off = t["energy_j"].copy()
    off.iloc[3] *= 1.05
    with pytest.warns(el.EnergyLensWarning, match=r"in 1 row\(s\) \(rows \['r3'\]"):
        m = el.HierarchicalEnergyModel().fit(t.assign(energy_j=off))
    assert m.phases_ == len(t) - 1
    # within the tolerance every row is fitted from its phases, without a word of it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = el.HierarchicalEnergyModel().fit(t.assign(energy_j=t["energy_j"] * 1.01))
    assert ok.phases_ == len(t) and not [x for x in caught if "phases sum" in str(x.message)]


def test_an_input_error_names_the_users_rows_though_phases_repeat_them():
    """The row checks ran on the phase-split table (the user's rows stacked with their split
    rows again, renumbered): one bad running_batch in row 'r0' was '2 row(s), rows [0, 24]'."""
    t, _ = form_table(["Llama-3.1-8B", "Qwen3-8B"], ["H100-SXM"], rows_per_group=6, seed=0,
                      phases=True)
    t.index = [f"r{i}" for i in range(len(t))]
    t["energy_j"] = t["prefill_energy_j"] + t["decode_energy_j"]
    bad = t.assign(running_batch=t["batch_size"] * 0.9).astype({"running_batch": object})
    bad.loc["r0", "running_batch"] = -1.0
    with pytest.raises(ValueError, match=r"column 'running_batch' must be a number > 0 where it "
                                         r"is given .*; 1 row\(s\) are not \(rows \['r0'\]"):
        el.HierarchicalEnergyModel().fit(bad)
    with pytest.raises(ValueError, match=r"'tp' must be a whole number >= 1; 1 row\(s\) are not "
                                         r"\(first at rows \['r5'\]"):
        el.HierarchicalEnergyModel().fit(t.assign(tp=[1.5 if i == 5 else 1 for i in range(len(t))]))
    # an empty cell is a cell left empty, not a bad value
    blank = t.assign(running_batch=[""] * len(t), input_tokens_assumed=[""] * len(t))
    _fit(el.HierarchicalEnergyModel(), blank)


def test_request_counts_a_fit_never_saw_are_not_used_and_it_says_so(tmp_path):
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=2)
    m = _fit(el.HierarchicalEnergyModel(), t.drop(columns="n_requests", errors="ignore"))
    assert not m.request_counts_
    rows = t.head(3).drop(columns="n_requests", errors="ignore")
    for model in (m, el.load_model(m.save(tmp_path / "h.json"))):
        with pytest.warns(el.EnergyLensWarning, match=r"3 row\(s\) give n_requests, which this "
                                                      r"model does not use"):
            given = model.predict_interval(rows.assign(n_requests=100.0))
        pd.testing.assert_frame_equal(given, _quiet(model.predict_interval, rows))
    # a fit that saw request counts uses them
    counted = _fit(el.HierarchicalEnergyModel(), t.assign(n_requests=np.where(
        np.arange(len(t)) % 2, 200.0, 2000.0)))
    assert counted.request_counts_
    few, many = (_quiet(counted.predict, rows.assign(n_requests=n)) for n in (200.0, 2000.0))
    assert np.all(few != many)


def test_other_spellings_of_one_model_or_gpu_are_one_level_in_training():
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=2)
    first = t["model"].iloc[0]
    respelt = t.copy()
    some = (t["model"] == first).to_numpy() & (np.arange(len(t)) % 2 == 1)
    respelt.loc[some, "model"] = f"meta-llama/{first}"
    respelt["gpu"] = respelt["gpu"].where(np.arange(len(t)) % 3 > 0, respelt["gpu"] + " ")
    with pytest.warns(el.EnergyLensWarning, match="names the catalogue reads as one model or GPU "
                                                  "are fitted as one"):
        m = el.HierarchicalEnergyModel().fit(respelt)
    reference = _fit(el.HierarchicalEnergyModel(), t)
    assert len(m.design_.groups) == len(reference.design_.groups) == 4
    np.testing.assert_allclose(_quiet(m.predict, t), _quiet(reference.predict, t), rtol=1e-6)


@pytest.mark.parametrize("value", [8, 16.0])
def test_a_numeric_precision_is_an_error_not_ignored(value):
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=2)
    with pytest.raises(CatalogueError, match=rf"column 'precision', rows \[0\]: unknown "
                                             rf"precision {value!r}"):
        el.HierarchicalEnergyModel().fit(t.astype({"precision": object}).assign(
            precision=[value] + ["bf16"] * (len(t) - 1)) if "precision" in t else
            t.assign(precision=[value] + ["bf16"] * (len(t) - 1)))


def test_an_unseen_model_starts_from_its_family():
    """The model family (dense or mixture-of-experts, from the catalogue) is a level: a
    mixture-of-experts model never seen is predicted from the other such models, not from
    the dense majority."""
    from energylens.models.hierarchical.design import DEFAULT_LEVELS

    dense = ["Llama-3.1-8B", "Qwen3-8B", "Mistral-7B", "Qwen3-14B", "gemma-2-9b"]
    moe = ["Mixtral-8x7B", "Qwen3-30B-A3B", "gpt-oss-20b", "Mixtral-8x22B-v0.1"]
    table, _ = form_table(dense + moe, ["H100-SXM", "A100-80GB", "H200"], rows_per_group=6,
                          seed=2, spread=0.1)
    table.loc[table["model"].isin(moe), "energy_j"] *= 2.0  # the family costs twice the form
    table["family"] = "not a level"  # a table column of that name changes nothing
    held = table["model"] == "Qwen3-30B-A3B"

    def error(levels):
        m = _fit(el.HierarchicalEnergyModel(levels=levels), table[~held])
        assert ("model_family" in {lv for lv, _ in m.tau_map_}) == (levels == "default")
        pred = _quiet(m.predict, table[held])
        return float(np.mean(np.abs(pred / table.loc[held, "energy_j"] - 1)))

    without = tuple(lv for lv in DEFAULT_LEVELS if lv[0] != ("model_family",))
    with_family, without_family = error("default"), error(without)
    assert with_family < 0.15 < without_family


# --------------------------------------------------------------------------- input lengths
@pytest.fixture(scope="module")
def assumed():
    """A table whose chat rows give a nominal prompt length flagged as assumed."""
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=10, seed=5)
    chat = (table["workload"] == "chat").to_numpy()
    table["input_tokens_assumed"] = chat
    table.loc[chat, "input_tokens"] = 1000.0
    return table, _fit(el.HierarchicalEnergyModel(), table)


@pytest.mark.parametrize("value", [np.nan, 0, -5, "abc", np.inf])
def test_an_invalid_input_length_is_an_error_naming_column_and_rows(assumed, value):
    table, m = assumed
    rows = table[table["workload"] == "code"].head(2)
    bad = rows.astype({"input_tokens": object})
    bad.loc[bad.index[1], "input_tokens"] = value
    with pytest.raises(ValueError, match=rf"column 'input_tokens' has 1 value.*rows \[{bad.index[1]}\]"):
        m.predict(bad)
    with pytest.raises(ValueError, match="column 'input_tokens'"):
        el.HierarchicalEnergyModel().fit(pd.concat([table, bad]))


def test_a_length_given_on_a_row_flagged_assumed_is_not_used_and_says_so(assumed, tmp_path):
    table, m = assumed
    row = table[table["input_tokens_assumed"]].head(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the training placeholder: nothing to say
        base = m.predict(row)
        assert m.predict(row.assign(input_tokens=np.nan)) == base
    for model in (m, el.load_model(m.save(tmp_path / "h.json"))):
        with pytest.warns(el.EnergyLensWarning, match=r"does not use \(first at rows \[\d+\]: "
                                                      r"\[9000.0\]\).*input_tokens_assumed=False"):
            assert model.predict(row.assign(input_tokens=9000.0)) == base
    given = _quiet(m.predict, row.assign(input_tokens=9000.0, input_tokens_assumed=False))
    assert given > 2 * base


@pytest.mark.parametrize("spell", [str, lambda v: "yes" if v else "no", lambda v: int(v)])
def test_the_assumed_flag_is_read_in_its_other_spellings(assumed, spell):
    """A flag read from a CSV as text: "False" is not set (it once counted as True, and every
    recorded prompt length was replaced by a fitted latent one)."""
    table, m = assumed
    rows = pd.concat([table[table["input_tokens_assumed"]].head(2),
                      table[~table["input_tokens_assumed"]].head(2)])
    text = rows.assign(input_tokens_assumed=[spell(bool(v)) for v in rows["input_tokens_assumed"]])
    np.testing.assert_array_equal(_quiet(m.predict, text), _quiet(m.predict, rows))
    with pytest.raises(ValueError, match=r"column 'input_tokens_assumed' must be a yes/no flag.*"
                                         rf"rows \[{rows.index[3]}\], values \['maybe'\]"):
        m.predict(text.assign(input_tokens_assumed=[spell(True), spell(True), spell(False), "maybe"]))


@pytest.mark.parametrize("bad", [0.0, -5.0, "abc"])
def test_an_invalid_running_batch_is_an_error_not_replaced_by_the_cap(bad):
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=1)
    table = table.assign(running_batch=table["batch_size"] * 0.9)
    m = _fit(el.HierarchicalEnergyModel(), table)
    rows = table.head(3).astype({"running_batch": object})
    rows.loc[rows.index[1], "running_batch"] = bad
    with pytest.raises(ValueError, match=rf"HierarchicalEnergyModel: column 'running_batch'.*"
                                         rf"rows \[{rows.index[1]}\]"):
        m.predict(rows)
    with pytest.raises(ValueError, match="column 'running_batch' must be a number > 0"):
        el.HierarchicalEnergyModel().fit(pd.concat([table, rows]))


def test_set_params_after_fit_changes_the_next_fit_only(assumed, tmp_path):
    table, m = assumed
    new = table.head(3).assign(gpu="L40S")  # a GPU the fit never saw: new_gpu_spread applies
    pi = _quiet(m.predict_interval, new)
    m2 = _fit(el.HierarchicalEnergyModel(), table)
    m2.set_params(new_gpu_spread=3.0, by=("model", "gpu", "workload"), poor_fit_mape=1e-3)
    pd.testing.assert_frame_equal(_quiet(m2.predict_interval, new), pi)
    back = el.load_model(m2.save(tmp_path / "h.json"))
    assert back.get_params()["new_gpu_spread"] == 0.3 and list(back.get_params()["by"]) == ["model", "gpu"]
    pd.testing.assert_frame_equal(_quiet(back.predict_interval, new), pi)
    assert "poor fit" not in m2.fit_report()
    with pytest.warns(el.PoorFitWarning) as caught:  # at the next fit, pointed at its caller
        again = clone(m2).fit(table)
    assert "poor fit" in again.fit_report()
    assert [w.filename for w in caught if w.category is el.PoorFitWarning] == [__file__]


def test_an_interval_spanning_orders_of_magnitude_is_flagged(assumed):
    table, m = assumed
    rows = table[table["workload"] == "code"].head(2)
    far = rows.assign(input_tokens=[512.0, 1e7])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pi = m.predict_interval(far)
    assert pi["wide"].tolist() == [False, True] and pi["upper"].iloc[1] > 10 * pi["lower"].iloc[1]
    assert all(issubclass(w.category, el.EnergyLensWarning) for w in caught)
    wide = [w for w in caught if "spanning more than a factor of 10" in str(w.message)]
    assert len(wide) == 1 and wide[0].filename == __file__


@pytest.mark.parametrize("bad", [0.0, -5.0, np.nan, "abc"])
def test_an_invalid_batch_size_is_an_error_even_beside_a_running_batch(bad):
    """Where running_batch was given, batch_size was never read, so 0, -5, NaN or 'abc' passed
    at fit and predict alike."""
    table, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=1)
    table = table.assign(running_batch=table["batch_size"] * 0.9)
    m = _fit(el.HierarchicalEnergyModel(), table)
    with pytest.raises(ValueError, match=r"'batch_size' must be a number > 0; 2 row\(s\)"):
        m.predict(table.head(2).assign(batch_size=bad))
    with pytest.raises(ValueError, match="'batch_size' must be a number > 0"):
        el.HierarchicalEnergyModel().fit(table.assign(batch_size=bad))


def test_a_precisions_realised_speed_carries_to_a_gpu_not_in_training():
    """Fitted on one GPU, the FP8 rows' deviation from their nominal speed-up went to a
    precision x GPU level keyed on that GPU, so a new GPU's FP8 rows fell back to the nominal
    speed-up (ML.ENERGY v3: FP8 rows 0.45 in log too cheap whichever GPU was held out). How
    much of its nominal speed a format realises is the kernels', and carries over."""
    bf, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=12, seed=3, spread=0.0)  # no group
    # deviations: a new GPU's rows are the population's, through the descriptors
    bf = bf.assign(precision="bf16")
    fp = bf.assign(precision="fp8")
    nominal = _fit(el.HierarchicalEnergyModel(), bf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp = fp.assign(energy_j=nominal.predict(fp) * 1.6)  # FP8 realises less than nominal
    both = pd.concat([bf, fp], ignore_index=True)
    m = _fit(el.HierarchicalEnergyModel(levels="rich"), both[both["gpu"] == GPUS[0]])
    test = fp[fp["gpu"] == GPUS[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        err = np.log(m.predict(test) / test["energy_j"].to_numpy())
    assert abs(float(np.median(err))) < 0.1, float(np.median(err))  # nominal: -0.39


@pytest.mark.parametrize("levels", [[(("gpu",), ())], [((), ("s",))], [("gpu", ("s",))]])
def test_a_malformed_custom_level_is_refused_at_fit(levels):
    """An empty parameter list fitted and then failed every predict (IndexError); no columns
    failed inside the design; a bare string was read as its letters."""
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=4, seed=2)
    with pytest.raises(ValueError, match=r"sequence of \(columns, parameters\) pairs, each a "
                                         r"non-empty tuple of names"):
        el.HierarchicalEnergyModel(levels=levels).fit(t)


@pytest.mark.parametrize("make", [el.HierarchicalEnergyModel,
                                  lambda **k: el.GroupedModel(el.EnergyLensModel(), **k)])
def test_n_jobs_zero_is_refused_by_the_parameter_check(make):
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=4, seed=2)
    with pytest.raises(ValueError, match=r"'n_jobs' parameter of \w+ must be an int in the range "
                                         r"\(-inf, -1\], an int in the range \[1, inf\) or None"):
        make(n_jobs=0).fit(t)


def test_intervals_take_the_student_t_of_the_residual_degrees_of_freedom(tmp_path):
    """sigma is estimated from the rows the parameters leave free: a fit of a few rows used the
    normal quantile as if sigma were known (one row: a +-1.2% interval on a floor sigma)."""
    from scipy import stats

    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=5, seed=4, noise=0.03)
    one = _fit(el.HierarchicalEnergyModel(), t.head(1))
    assert one.sigma_dof_ == 1.0
    pi = _quiet(one.predict_interval, t.head(1))
    assert np.log(pi["upper"] / pi["energy_j"]).iloc[0] == pytest.approx(
        stats.t.ppf(0.95, 1) * pi["log_sd"].iloc[0], rel=1e-9)  # 6.3 sd, not 1.6
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=15, seed=4, noise=0.03)
    m = _fit(el.HierarchicalEnergyModel(), t)
    assert 1.0 < m.sigma_dof_ < len(t)
    pi = _quiet(m.predict_interval, t, level=0.8)
    np.testing.assert_allclose(np.log(pi["upper"] / pi["energy_j"]),
                               stats.t.ppf(0.9, m.sigma_dof_) * pi["log_sd"], rtol=1e-9)
    assert f"({m.sigma_dof_:.1f} degrees of freedom)" in m.fit_report()
    back = el.load_model(m.save(tmp_path / "h.json"))
    assert back.sigma_dof_ == m.sigma_dof_
    pd.testing.assert_frame_equal(_quiet(back.predict_interval, t), _quiet(m.predict_interval, t))
    # a file from before the entry reads with the normal quantile, and is written back valid
    data = json.loads((tmp_path / "h.json").read_text())
    del data["fit"]["sigma_dof"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = el.load_model(tmp_path / "old.json")
    assert old.sigma_dof_ == np.inf and "degrees of freedom" not in old.fit_report()
    assert el.load_model(old.save(tmp_path / "again.json")).sigma_dof_ == np.inf


def test_a_layout_its_group_never_ran_is_flagged_though_other_groups_ran_it(tmp_path):
    """Llama measured at TP 1 only and predicted at TP 4 rests on the other groups' TP 4
    rows: the table-wide range covers it, so it went unflagged (the per-group models flag
    it)."""
    t, _ = form_table(["Llama-3.1-8B", "Qwen3-8B"], ["H100-SXM"], rows_per_group=12, seed=2)
    train = t[(t["model"] != "Llama-3.1-8B") | (t["tp"] == 1)]
    m = _fit(el.HierarchicalEnergyModel(), train)
    inside = train[train["model"] == "Llama-3.1-8B"].head(2)
    rows = pd.concat([inside, inside.assign(tp=4)], ignore_index=True)
    for model in (m, el.load_model(m.save(tmp_path / "h.json"))):
        with pytest.warns(ExtrapolationWarning, match=r"tp 4 where group 'Llama-3.1-8B / H100-SXM' "
                                                      r"measured 1 to 1 only"):
            pi = model.predict_interval(rows)
        assert pi["extrapolated"].tolist() == [False, False, True, True]
        assert pi["extrapolated_by"].iloc[3] == "tp of its group"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trained layouts of the same group: nothing to say
        m.predict(inside)
    # a model file from before the ranges reads without them, and flags no such row
    data = json.loads((tmp_path / "h.json").read_text())
    del data["extra"]["group_ranges"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = el.load_model(tmp_path / "old.json")
    assert old.group_ranges_ is None
    assert not _quiet(old.predict_interval, rows)["extrapolated"].any()
    assert el.load_model(old.save(tmp_path / "again.json")).group_ranges_ is None


def test_a_model_from_before_the_new_attributes_predicts_and_saves(tmp_path):
    """A pickle from before sigma_dof_, group_ranges_ and request_counts_ raised AttributeError
    in predict and in save."""
    t, _ = form_table(MODELS[:2], GPUS[:2], rows_per_group=6, seed=1)
    m = _fit(el.HierarchicalEnergyModel(), t)
    ref = _quiet(m.predict, t)
    for name in ("sigma_dof_", "group_ranges_", "request_counts_"):
        delattr(m, name)
    np.testing.assert_array_equal(_quiet(m.predict, t), ref)
    back = el.load_model(m.save(tmp_path / "h.json"))
    assert back.sigma_dof_ == np.inf and back.request_counts_ and back.group_ranges_ is None
    np.testing.assert_array_equal(_quiet(back.predict, t), ref)
