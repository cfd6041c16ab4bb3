"""Saving and loading models: round trips, and clear errors on damaged files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.exceptions import ModelFileError
from energylens.models import (
    EnergyLensModel,
    LinearEnergyModel,
    LogLinearEnergyModel,
    SweetSpotModel,
    WilkinsModel,
)

from .test_models import make_table


@pytest.fixture(scope="module")
def table():
    df = make_table(n=150, seed=60)
    df["n_requests"] = 200.0
    df["batch_kind"] = "cap"
    return df


@pytest.mark.parametrize("model", [EnergyLensModel(), SweetSpotModel(), WilkinsModel(),
                                   LinearEnergyModel(), LogLinearEnergyModel(),
                                   EnergyLensModel(loss="log", fixed={"c4": 0.0})])
def test_round_trip_gives_identical_predictions(model, table, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(table)
    path = model.save(tmp_path / "m.json")
    loaded = energylens.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    pd.testing.assert_frame_equal(loaded.params_, model.params_)
    pd.testing.assert_frame_equal(loaded.predict_interval(table), model.predict_interval(table))
    assert loaded.fit_report() == model.fit_report()


def test_saturating_batch_rule_round_trip(table, tmp_path):
    m = EnergyLensModel().fit(table)
    assert m.batch_rule_ == "saturating" and m.batch_k_ > 0
    loaded = energylens.load_model(m.save(tmp_path / "m.json"))
    assert loaded.batch_rule_ == "saturating" and loaded.batch_k_ == m.batch_k_
    np.testing.assert_array_equal(loaded.predict(table), m.predict(table))


def test_file_content_is_documented_json(table, tmp_path):
    m = EnergyLensModel().fit(table)
    data = json.loads(m.save(tmp_path / "m.json").read_text())
    assert data["format"] == "energylens.model" and data["format_version"] == 2
    assert data["energylens_version"] == energylens.__version__
    assert data["formula"].startswith("E = ")
    assert [p["name"] for p in data["parameters"]] == [f"c{i}" for i in range(1, 13)]
    assert data["parameters"][0]["unit"] == "J/token"
    assert data["fit"]["n"] == 150
    assert data["fit"]["domain"]["ranges"]["t"] == [1.0, 8.0]


def _saved(table, tmp_path):
    m = EnergyLensModel().fit(table)
    path = m.save(tmp_path / "m.json")
    return path, json.loads(path.read_text())


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: d.pop("parameters"), "missing key"),
    (lambda d: d.update(format_version=99), "unsupported format_version 99"),
    (lambda d: d.update(format="something-else"), "'format' is"),
    (lambda d: d.update({"class": "os.system"}), "unknown model class 'os.system'"),
    (lambda d: d["parameters"][2].update(value="NaN"), "expected a number"),
    (lambda d: d["parameters"][2].update(value=None), "expected a number"),
    (lambda d: d["parameters"].pop(), "expected 12 parameters"),
    (lambda d: d["parameters"][0].update(name="c2"), "found where 'c1' was expected"),
    (lambda d: d["fit"].update(cov=[[1.0]]), "matrix"),
    (lambda d: d["fit"].update(batch_rule="magic"), "unknown batch rule"),
    (lambda d: d["init_params"].update(evil="__import__('os')"), "unknown constructor arguments"),
])
def test_damaged_files_give_clear_errors(table, tmp_path, damage, fragment):
    path, data = _saved(table, tmp_path)
    damage(data)
    with pytest.raises(ModelFileError, match=fragment) as exc:
        energylens.load_model(_write(path, data))
    assert "m.json" in str(exc.value)


def test_nan_literal_and_bad_json(table, tmp_path):
    path, _ = _saved(table, tmp_path)
    text = path.read_text().replace('"sigma": ', '"sigma": NaN, "x": ', 1)
    path.write_text(text)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        energylens.load_model(path)
    path.write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        energylens.load_model(path)
    with pytest.raises(ModelFileError, match="Cannot read model file"):
        energylens.load_model(tmp_path / "absent.json")


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        EnergyLensModel().save(tmp_path / "m.json")
