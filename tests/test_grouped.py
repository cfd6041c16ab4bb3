"""GroupedModel: one fit per group, from one read of the table; saved as a folder."""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import energylens
from energylens.exceptions import ExtrapolationWarning, ModelFileError, PoorFitWarning
from energylens.models import (
    EnergyLensModel,
    GroupedModel,
    LatencyModel,
    SweetSpotModel,
    WilkinsModel,
)

from .test_models import THETA, make_table


@pytest.fixture(scope="module")
def table():
    parts = []
    for i, (model, gpu) in enumerate([("m1", "H100"), ("m1", "A100"), ("m2", "H100")]):
        part = make_table(n=60, theta=THETA * (1 + 0.3 * i), seed=10 + i)
        part["model"], part["gpu"] = model, gpu
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _fit(est, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(df, **kw)


def test_fast_path_equals_one_fit_per_group(table):
    g = _fit(GroupedModel(EnergyLensModel()), table)
    for key, part in table.groupby(["model", "gpu"]):
        alone = _fit(EnergyLensModel(), part)
        np.testing.assert_allclose(g.models_[key].coef_, alone.coef_, rtol=1e-9, atol=1e-15)
    assert set(g.groups_["n_rows"]) == {60} and g.groups_["fitted"].all()
    assert (g.groups_["fit_time_s"] > 0).all()


def test_save_and_load_round_trip_bit_exact(table, tmp_path):
    g = _fit(GroupedModel(EnergyLensModel(), fallback="pooled"), table)
    folder = g.save(tmp_path / "grouped")
    names = sorted(p.name for p in folder.iterdir())
    assert "groups.json" in names and "m1__H100.json" in names and "fallback.json" in names
    back = energylens.load_model(folder)
    assert isinstance(back, GroupedModel) and back.by_ == ["model", "gpu"]
    np.testing.assert_array_equal(back.predict(table), g.predict(table))
    pd.testing.assert_frame_equal(back.predict_interval(table), g.predict_interval(table))
    unseen = table.head(3).assign(model="m9")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(back.predict(unseen), g.predict(unseen))


def test_unknown_group_lists_fitted_groups_and_case_slips(table):
    g = _fit(GroupedModel(WilkinsModel()), table)
    with pytest.raises(ValueError, match=r"No fitted model for group 'M1 / H100'.*Did you mean 'm1 / H100'"):
        g.predict(table.head(2).assign(model="M1"))
    with pytest.raises(ValueError, match="needs the group column"):
        g.predict(table.drop(columns="gpu"))


@pytest.mark.parametrize("entry, message", [
    ("../outside.json", "plain file name"),
    ("/etc/passwd", "plain file name"),
    ("link.json", "points outside the folder"),
])
def test_group_files_must_lie_inside_the_folder(table, tmp_path, entry, message):
    g = _fit(GroupedModel(WilkinsModel()), table)
    folder = g.save(tmp_path / "g")
    (tmp_path / "outside.json").write_text((folder / "m1__H100.json").read_text())
    os.symlink(tmp_path / "outside.json", folder / "link.json")
    index = json.loads((folder / "groups.json").read_text())
    index["groups"][0]["file"] = entry
    (folder / "groups.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=message):
        energylens.load_model(folder)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(format="other"), "expected format"),
    (lambda d: d.update(groups="x"), "expected format"),
    (lambda d: d["groups"][0].update(key=["m1"]), "one value per 'by' column"),
    (lambda d: d["groups"][0].update(key=[["m1"], "H100"]), "plain values"),
    (lambda d: d.update(format_version=7), "unsupported format_version"),
])
def test_malformed_index_gives_clear_errors(table, tmp_path, damage, message):
    g = _fit(GroupedModel(WilkinsModel()), table)
    folder = g.save(tmp_path / "g")
    index = json.loads((folder / "groups.json").read_text())
    damage(index)
    (folder / "groups.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=message):
        energylens.load_model(folder)
    (folder / "groups.json").write_text("[" * 100_000)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        energylens.load_model(folder)


def test_group_errors_are_recorded_not_raised(table):
    bad = table.copy()
    bad.loc[bad.model == "m2", "energy_j"] = -1.0  # a group the relative loss cannot fit
    g = _fit(GroupedModel(WilkinsModel()), bad)
    row = g.groups_.set_index(["model", "gpu"]).loc[("m2", "H100")]
    assert not row["fitted"] and "strictly positive" in row["error"]


def test_models_with_table_checks_take_the_table_path(table):
    # SweetSpotModel checks each group's table (settings other than the lengths); the
    # grouped fit must still run those checks.
    g = _fit(GroupedModel(SweetSpotModel(), by=["model", "gpu", "tp"]), table)
    assert "differ in" in " ".join(g.groups_["warnings"])


def test_distributed_backend_gets_every_worker():
    from joblib import parallel_config

    from energylens.models.grouped import _n_jobs

    assert _n_jobs(None) is None
    with parallel_config(backend="threading"):
        assert _n_jobs(None) is None
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        with parallel_config(backend="dask"):
            assert _n_jobs(None) == -1


@pytest.mark.slow
def test_fit_on_a_dask_cluster_matches_local(table):
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    from joblib import parallel_config

    local = _fit(GroupedModel(EnergyLensModel()), table)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        with parallel_config(backend="dask"):
            remote = _fit(GroupedModel(EnergyLensModel()), table)
    for key, m in local.models_.items():
        np.testing.assert_array_equal(remote.models_[key].coef_, m.coef_)


def test_ray_backend_is_not_run_in_process(monkeypatch):
    # Ray is not installed here; its joblib backend class is named RayBackend. Under it, an
    # unset n_jobs must mean every worker of the cluster, as for dask.
    import energylens.models.grouped as grouped

    class RayBackend:
        pass

    monkeypatch.setattr(grouped, "get_active_backend", lambda: (RayBackend(), None))
    assert grouped._n_jobs(None) == -1
    assert grouped._n_jobs(3) == 3


@pytest.mark.parametrize("enabled", [True, False])
def test_cycle_collector_is_paused_during_the_groups_and_restored(table, monkeypatch, enabled):
    """The groups are fitted with the cycle collector off; afterwards it is as it was, and
    the fits are the same as one fit per group."""
    import gc

    from energylens.models import grouped

    seen = []
    real = grouped._run
    monkeypatch.setattr(grouped, "_run", lambda fit, key: seen.append(gc.isenabled()) or real(fit, key))
    (gc.enable if enabled else gc.disable)()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = GroupedModel(EnergyLensModel(), by=["model"]).fit(table)
        assert seen and not any(seen)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {k: EnergyLensModel().fit(g).coef_ for k, g in table.groupby("model")}
    for (k,), model in m.models_.items():
        np.testing.assert_allclose(model.coef_, ref[k], rtol=1e-9)


def test_a_by_column_the_table_lacks_is_an_error(table):
    # a misspelt column must not silently pool what the user asked to keep apart
    with pytest.raises(ValueError, match=r"lacks \['GPU'\] \('GPU': did you mean 'gpu'\?\)"):
        GroupedModel(WilkinsModel(), by=["model", "GPU"]).fit(table)
    with pytest.raises(ValueError, match=r"lacks \['nope'\]"):
        GroupedModel(WilkinsModel(), by=["nope"]).fit(table)
    # the default pair: a table of one GPU groups by model
    g = _fit(GroupedModel(WilkinsModel()), table.drop(columns="gpu"))
    assert g.by_ == ["model"]


def test_other_spellings_of_a_fitted_gpu_or_model_find_its_group(table):
    named = table.assign(model=np.where(table["model"] == "m1", "meta-llama/Llama-3.1-8B", "Qwen3-8B"),
                         gpu="H100-80GB-HBM3")
    g = _fit(GroupedModel(WilkinsModel()), named)
    rows = named[named["model"] == "meta-llama/Llama-3.1-8B"].head(3)
    base = g.predict(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither an unknown group nor an extrapolation
        same = g.predict(rows.assign(gpu="NVIDIA H100 80GB HBM3", model="Llama-3.1-8B"))
    np.testing.assert_array_equal(same, base)
    with pytest.raises(ValueError, match="No fitted model for group"):
        g.predict(rows.assign(model="Llama-3.1-8B-Thinking"))  # another checkpoint


def test_another_host_of_the_same_gpu_is_not_a_spelling(table):
    # Wilkins et al. name hosts: two machines with one GPU type are different groups
    hosted = table.assign(gpu=np.where(table["gpu"] == "H100", "A100-40GB (Swing)", "V100-16GB"))
    g = _fit(GroupedModel(WilkinsModel()), hosted)
    rows = hosted[hosted["gpu"] == "A100-40GB (Swing)"].head(2)
    np.testing.assert_array_equal(g.predict(rows.assign(gpu="A100-SXM4-40GB (Swing)")), g.predict(rows))
    with pytest.raises(ValueError, match="No fitted model for group"):
        g.predict(rows.assign(gpu="A100-40GB (Palmetto)"))


# --------------------------------------------------------------------------- settings and warnings
def test_save_and_load_keep_the_constructor_parameters(table, tmp_path):
    t = table.assign(tpot_s=0.02 + 1e-4 * table["batch_size"])
    g = _fit(GroupedModel(LatencyModel(target="tpot_s"), by=["model"], fallback="pooled",
                          min_rows=4), t)
    back = energylens.load_model(g.save(tmp_path / "g"))
    p = back.get_params(deep=False)
    assert type(p["estimator"]) is LatencyModel and p["estimator"].target == "tpot_s"
    assert p["fallback"] == "pooled" and p["min_rows"] == 4 and list(p["by"]) == ["model"]
    again = _fit(clone(back), t)
    assert {type(m) for m in again.models_.values()} == {LatencyModel}
    np.testing.assert_allclose(again.predict(t), g.predict(t), rtol=1e-9)
    other = _fit(GroupedModel(EnergyLensModel(loss="log"), fallback=WilkinsModel()), table)
    p = energylens.load_model(other.save(tmp_path / "o")).get_params(deep=False)
    assert p["estimator"].loss == "log" and type(p["fallback"]) is WilkinsModel


def test_a_folder_without_constructor_parameters_still_loads(table, tmp_path):
    g = _fit(GroupedModel(WilkinsModel(), by=["model", "gpu"]), table)
    folder = g.save(tmp_path / "g")
    index = json.loads((folder / "groups.json").read_text())
    del index["init_params"]
    (folder / "groups.json").write_text(json.dumps({**index, "format_version": 1}))
    back = energylens.load_model(folder)
    assert list(back.by) == ["model", "gpu"] and back.estimator is None
    np.testing.assert_array_equal(back.predict(table), g.predict(table))


@pytest.mark.parametrize("params, message", [
    ({"estimator": {"class": "os.system", "init_params": {}}}, "known 'class'"),
    ({"estimator": {"class": "WilkinsModel", "init_params": {"nope": 1}}}, "cannot rebuild"),
    ({"min_rows": 0}, "cannot rebuild GroupedModel"),
    ("x", "'init_params' must be an object"),
])
def test_tampered_constructor_parameters_are_refused(table, tmp_path, params, message):
    folder = _fit(GroupedModel(WilkinsModel()), table).save(tmp_path / "g")
    index = json.loads((folder / "groups.json").read_text())
    index["init_params"] = {**index["init_params"], **params} if isinstance(params, dict) else params
    (folder / "groups.json").write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=message):
        energylens.load_model(folder)


def test_group_warnings_are_summed_up_once_per_category(table):
    noisy = table.copy()
    m2 = noisy["model"] == "m2"
    noisy.loc[m2, "energy_j"] *= np.exp(np.random.default_rng(0).normal(0, 1.0, int(m2.sum())))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = GroupedModel(EnergyLensModel()).fit(noisy)
    poor = [w for w in caught if issubclass(w.category, PoorFitWarning)]
    assert len(poor) == 1 and poor[0].filename == __file__
    assert "PoorFitWarning from 1 of 3 fit(s): m2 / H100" in str(poor[0].message)
    assert "PoorFitWarning" in g.groups_.set_index("model").loc["m2", "warnings"]
    categories = [w.category for w in caught]
    assert len(categories) == len(set(categories))


def test_bad_overrides_are_one_clear_error_before_any_group(table):
    with pytest.raises(ValueError, match=r"unknown parameters \['c99'\]"):
        GroupedModel(EnergyLensModel(fixed={"c99": 0.0})).fit(table)
    with pytest.raises(ValueError, match=r"c3 = -5.0 outside the bounds"):
        GroupedModel(SweetSpotModel(), fallback=EnergyLensModel(fixed={"c3": -5.0})).fit(table)


def test_grouped_warnings_point_at_the_callers_line(table):
    g = _fit(GroupedModel(EnergyLensModel()), table)
    far = table.head(2).assign(tp=64)
    for call in (g.predict, g.predict_interval, g.predict_components):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(far)
        ext = [w for w in caught if issubclass(w.category, ExtrapolationWarning)]
        assert len(ext) == 1 and ext[0].filename == __file__, call.__name__


def test_groups_too_small_to_fit_are_warned_and_named_at_predict(table):
    small = pd.concat([table, table.head(2).assign(model="m3")], ignore_index=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = GroupedModel(WilkinsModel()).fit(small)
    said = [str(w.message) for w in caught if "min_rows" in str(w.message)]
    assert len(said) == 1 and re.search(r"1 group\(s\) have fewer than min_rows=3 rows and are not "
                                        r"fitted: m3 / H100 \(2 rows\).*fallback='pooled'", said[0])
    with pytest.raises(ValueError, match=r"'m3 / H100'.*2 rows in training, fewer than "
                                         r"min_rows=3.*fallback='pooled'"):
        g.predict(small.tail(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = GroupedModel(WilkinsModel(), fallback="pooled").fit(small)
        assert np.all(pooled.predict(small.tail(2)) > 0)


@pytest.mark.parametrize("method", ["delta", "bootstrap"])
def test_predict_interval_forwards_the_interval_method(table, method):
    """GroupedModel.predict_interval(method=...) raised TypeError: the keyword collided with
    the internal name of the method to call."""
    g = _fit(GroupedModel(EnergyLensModel()), table)
    rows = table.groupby(["model", "gpu"]).head(2)
    got = g.predict_interval(rows, method=method, n_boot=30)
    for (model, gpu), part in rows.groupby(["model", "gpu"]):
        want = g.models_[(model, gpu)].predict_interval(part, method=method, n_boot=30)
        pd.testing.assert_frame_equal(got.loc[part.index], want)
