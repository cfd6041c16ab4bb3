"""The hierarchical model's honesty about what its data cannot see: a parameter held inside
its physical range (the pipeline share), and intervals that widen for a precision or source
that training never ran."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import energylens as el
from energylens.exceptions import ModelFileError
from energylens.models.hierarchical import form_table
from energylens.models.hierarchical.form import PARAMETER_NAMES
from energylens.models.hierarchical.variables import row_labels

MODELS = ["Llama-3.1-8B", "Qwen3-8B", "Mistral-7B", "Qwen3-14B"]
GPUS = ["H100-SXM", "A100-80GB", "L40S", "H200", "B200"]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _pipelined(cpp: float) -> pd.DataFrame:
    table, _ = form_table(MODELS, GPUS[:3], rows_per_group=12, seed=8, pipelined=0.3,
                          population={"cpp": cpp})
    assert (table["pp"] == 2).sum() > 30
    return table


def test_a_pipeline_share_inside_its_range_is_measured():
    m = _quiet(el.HierarchicalEnergyModel().fit, _pipelined(0.5))
    r = m.params_.loc["cpp"]
    assert r["identifiable"] and not r["at_bound"] and r["note"] == ""
    assert abs(r["value"] - 0.5) < 2 * r["stderr"] + 0.05 and r["value"] < 1


def test_a_pipeline_slower_than_one_stage_at_a_time_is_not_read_as_a_share():
    # the table's pipelines cost what a share of 3 would: beyond the physical range [0, 1]
    # (it was fitted as cpp = 2.2 +/- 0.6 and reported as identified)
    table = _pipelined(3.0)
    m = _quiet(el.HierarchicalEnergyModel().fit, table)
    r = m.params_.loc["cpp"]
    assert 0 < r["value"] <= 1 and r["at_bound"] and not r["identifiable"]
    assert "physical bound 1" in r["note"] and "not physics" in r["note"]
    assert "physical bound 1" in m.fit_report()
    groups = m.groups_
    assert ((groups["cpp"] > 0) & (groups["cpp"] <= 1)).all()
    # the bound holds in prediction: eight stages taking turns are no slower than one GPU
    # holding every layer
    rows = table[table["pp"] == 2].head(3)
    deep = _quiet(m.predict_components, rows.assign(pp=8, tp=1))
    flat = _quiet(m.predict_components, rows.assign(pp=1, tp=1))
    assert (deep["step_time_s"] <= flat["step_time_s"] * (1 + 1e-9)).all()


def test_bounded_parameters_survive_a_round_trip_and_old_files_still_load(tmp_path):
    table = _pipelined(0.5)
    m = _quiet(el.HierarchicalEnergyModel().fit, table)
    path = m.save(tmp_path / "hier.json")
    back = el.load_model(path)
    assert back.upper_ == m.upper_ == {"cpp": 1.0}
    np.testing.assert_array_equal(_quiet(back.predict, table), _quiet(m.predict, table))
    pd.testing.assert_frame_equal(_quiet(back.predict_interval, table),
                                  _quiet(m.predict_interval, table), check_exact=True)
    pd.testing.assert_frame_equal(back.params_, m.params_)
    # a file of version 1 fitted every parameter as its log, the pipeline share included: it
    # loads so (on rows without a pipeline the share plays no part)
    data = json.loads(path.read_text())
    old = dict(data, extra={k: v for k, v in data["extra"].items() if k != "upper"} | {"version": 1})
    (tmp_path / "v1.json").write_text(json.dumps(old))
    v1 = el.load_model(tmp_path / "v1.json")
    assert v1.upper_ == {}
    flat = table[table["pp"] == 1]
    np.testing.assert_array_equal(_quiet(v1.predict, flat), _quiet(m.predict, flat))
    for extra, match in (({"upper": {"cpp": -1.0}}, "upper"), ({"upper": {"nope": 1.0}}, "upper"),
                         ({"version": 3}, "version 3")):
        (tmp_path / "bad.json").write_text(json.dumps(dict(data, extra=data["extra"] | extra)))
        with pytest.raises(ModelFileError, match=match):
            el.load_model(tmp_path / "bad.json")


def test_a_version_2_file_with_other_bounds_does_not_load(tmp_path):
    # any positive bound used to load and change the predictions of pipelined rows (a bound
    # of 0.5: 22% lower; 1e300: x4e299), and an empty one read the share as a log
    table = _pipelined(0.5)
    m = _quiet(el.HierarchicalEnergyModel().fit, table)
    data = json.loads(m.save(tmp_path / "hier.json").read_text())
    for upper in ({"cpp": 0.5}, {"cpp": 1e300}, {"cpp": 1.0, "s": 2.0}, {}):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(dict(data, extra=data["extra"] | {"upper": upper})))
        with pytest.raises(ModelFileError, match=r"bad\.json.*'extra\.upper'.*expected \{'cpp': 1\.0\}"):
            el.load_model(bad)
    # the version-1 file still loads, and says that its share was fitted without the bound
    old = dict(data, extra={k: v for k, v in data["extra"].items() if k != "upper"} | {"version": 1})
    (tmp_path / "v1.json").write_text(json.dumps(old))
    meaning = el.load_model(tmp_path / "v1.json").params_.loc["cpp", "meaning"]
    assert "bounded by 1" not in meaning and "fitted without its bound 1" in meaning
    assert "bounded by 1" in m.params_.loc["cpp", "meaning"]


def test_at_bound_measures_the_distance_to_the_bound():
    # few pipelined rows whose pipelines cost a share of 1.5: the fit sits at 0.87, its 90%
    # interval reaching 0.97 (it was 0.87 +/- 0.11, identifiable, not at its bound: a
    # standard error of the value shrinks with the distance to the bound, so cannot measure it)
    table, _ = form_table(MODELS, GPUS[:3], rows_per_group=12, seed=8, pipelined=0.1,
                          population={"cpp": 1.5})
    m = _quiet(el.HierarchicalEnergyModel().fit, table)
    r = m.params_.loc["cpp"]
    assert 0.8 < r["value"] < 1 and r["at_bound"] and not r["identifiable"]
    assert "physical bound 1" in r["note"]
    # a mid-range value with a wide logit is not at its bound (it was: 1 - 0.6 < 0.46)
    wide = copy.deepcopy(m)
    j = int(np.flatnonzero((wide.design_.kind == "pop")
                           & (wide.design_.param == PARAMETER_NAMES.index("cpp")))[0])
    wide.coef_[j], wide.posterior_.diag[j] = np.log(0.6 / 0.4), 1.9**2
    r = wide.params_.loc["cpp"]
    assert abs(r["value"] - 0.6) < 1e-12 and r["stderr"] > 1 - 0.6
    assert not r["at_bound"] and "bound" not in r["note"]


@pytest.fixture(scope="module")
def one_precision():
    table, _ = form_table(MODELS[:3], GPUS[:2], rows_per_group=8, seed=6)
    return table, _quiet(el.HierarchicalEnergyModel().fit, table)


def test_an_unseen_precision_widens_the_interval(one_precision):
    table, m = one_precision
    rows = table.iloc[:4]
    seen = _quiet(m.predict_interval, rows)
    assert (seen["log_sd"] < 0.1).all()
    with pytest.warns(el.ExtrapolationWarning, match="precision 'fp8' not seen"):
        fp8 = m.predict_interval(rows.assign(precision="fp8"))
    # one precision in training: no spread between precisions, the stated prior instead (it
    # was flagged, but its interval was as narrow as a trained row's)
    assert (fp8["log_sd"] >= 0.42).all() and fp8["extrapolated_by"].str.contains("precision").all()
    assert (fp8["log_sd"] ** 2 - 0.42**2 < 0.1**2).all()
    narrow = _quiet(el.HierarchicalEnergyModel(new_precision_spread=0.0).fit, table)
    assert (_quiet(narrow.predict_interval, rows.assign(precision="fp8"))["log_sd"] < 0.1).all()
    pd.testing.assert_frame_equal(_quiet(narrow.predict_interval, rows), seen)


def test_an_unseen_source_widens_the_interval_to_orders_of_magnitude(one_precision):
    table, m = one_precision
    rows = table.iloc[:2]
    pi = _quiet(m.predict_interval, rows.assign(source="hf-pipeline"))
    assert (pi["log_sd"] >= 1.4).all() and pi["wide"].all()
    assert pi["extrapolated_by"].str.contains("source").all()
    # a row that names no source is not a new one
    assert (_quiet(m.predict_interval, rows.drop(columns="source"))["log_sd"] < 0.1).all()


def test_an_estimated_spread_between_precisions_is_kept():
    table, _ = form_table(MODELS[:3], GPUS, rows_per_group=6, seed=9)
    table["precision"] = np.where(table["model"] == MODELS[0], "fp8", "bf16")
    fits = [_quiet(el.HierarchicalEnergyModel(new_precision_spread=s).fit, table) for s in (0.42, 5)]
    tau = fits[0].tau_
    assert tau.loc["precision x gpu", "estimated"].all()  # 10 values: estimated
    rows = table.iloc[:3].assign(precision="fp4")
    a, b = (_quiet(f.predict_interval, rows) for f in fits)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.realdata
def test_v2_pipeline_share_stays_physical(real_data):
    # 17 rows with pp = 2 from two groups (8 x 2 GPUs over two nodes): cpp was 3.4 +/- 1.9,
    # reported as identified. Bounded, it is 0.71 +/- 0.24 (the data remove about two thirds of
    # its prior variance, so it is reported as measured); where the data say less it must be
    # flagged as the prior's, never shown as a measured value outside (0, 1].
    v2 = _quiet(el.read_mlenergy_leaderboard, real_data / "mlenergy_v2").reset_index(drop=True)
    m = _quiet(el.HierarchicalEnergyModel().fit, v2)
    r = m.params_.loc["cpp"]
    assert 0 < r["value"] <= 1 and not r["at_bound"]
    if r["identifiable"]:
        assert r["stderr"] < r["value"] and (r["log_sd"] / r["prior_log_sd"]) ** 2 <= 0.5
    else:
        assert r["note"]
    assert m.train_mape_ < 3.0


@pytest.mark.realdata
def test_v3_bf16_fit_covers_its_fp8_rows(real_data):
    # fitted on BF16 rows only, the 90% intervals held 0.37 of the FP8 rows
    v3 = _quiet(el.read_mlenergy_leaderboard, real_data / "mlenergy_v3").reset_index(drop=True)
    precision = row_labels(v3)["precision"].to_numpy()
    train, test = v3[precision == "bf16"], v3[precision == "fp8"]
    m = _quiet(el.HierarchicalEnergyModel().fit, train)
    pi = _quiet(m.predict_interval, test, level=0.9)
    assert pi["extrapolated_by"].str.contains("precision").all()
    inside = (test["energy_j"] >= pi["lower"]) & (test["energy_j"] <= pi["upper"])
    assert inside.mean() > 0.8
