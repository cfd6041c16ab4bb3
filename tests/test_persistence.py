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
    ExpressionModel,
    GroupedModel,
    HierarchicalEnergyModel,
    LatencyModel,
    LinearEnergyModel,
    LogLinearEnergyModel,
    SweetSpotModel,
    WilkinsModel,
)
from energylens.models.hierarchical import form_table

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


# --------------------------------------------------------------------------- exact fits
def _exact_table() -> pd.DataFrame:
    """Two rows: every model below has two free parameters, so no residual degree of freedom
    is left and the residual scale and the covariance are NaN."""
    return pd.DataFrame({"model": "m", "gpu": "g", "tp": 1, "pp": 1, "batch_size": [1.0, 8.0],
                         "input_tokens": [100.0, 1000.0], "output_tokens": [50.0, 20.0],
                         "energy_j": [3.0, 11.0], "tpot_s": [0.01, 0.03]})


@pytest.mark.parametrize("model", [EnergyLensModel(), SweetSpotModel(), WilkinsModel(),
                                   LinearEnergyModel(), LatencyModel(target="tpot_s"),
                                   ExpressionModel(expression="a0*si + a1*so")],
                         ids=lambda m: type(m).__name__)
def test_fit_without_degrees_of_freedom_round_trips_bit_for_bit(model, tmp_path):
    table = _exact_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(table)
    st = model._state_
    assert st.dof == 0 and np.isnan(st.sigma) and st.cov.size and np.isnan(st.cov).all()
    path = model.save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["fit"]["sigma"] is None and data["fit"]["cov"][0][0] is None  # JSON has no NaN
    loaded = energylens.load_model(path)
    back = loaded._state_
    assert back.cov.tobytes() == st.cov.tobytes() and back.cov.shape == st.cov.shape
    assert np.float64(back.sigma).tobytes() == np.float64(st.sigma).tobytes()
    assert back.mape_pct == st.mape_pct and back.cost == st.cost
    np.testing.assert_array_equal(loaded.predict(table), model.predict(table))
    pd.testing.assert_frame_equal(loaded.params_, model.params_)
    pd.testing.assert_frame_equal(loaded.predict_interval(table), model.predict_interval(table))
    assert loaded.fit_report() == model.fit_report()


def test_grouped_model_of_exact_fits_round_trips(tmp_path):
    t = _exact_table()
    table = pd.concat([t, t.assign(gpu="h", energy_j=[4.0, 9.0])], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GroupedModel(EnergyLensModel(), min_rows=2).fit(table)
    assert g.groups_["sigma"].isna().all()
    loaded = energylens.load_model(g.save(tmp_path / "groups"))
    np.testing.assert_array_equal(loaded.predict(table), g.predict(table))
    # every group's sigma is NaN: the column comes back as floats, not as None
    pd.testing.assert_frame_equal(loaded.groups_, g.groups_)
    for key, m in g.models_.items():
        assert loaded.models_[key]._state_.cov.tobytes() == m._state_.cov.tobytes()


def test_a_blank_group_value_round_trips(table, tmp_path):
    """A group whose label is blank (NaN in the table) is saved and loaded as the same
    group: its rows are predicted after loading, and after a pickle, as before."""
    import pickle

    from energylens.tables.values import LABEL_DTYPE

    t = table.assign(workload=pd.array(["chat", None] * (len(table) // 2), dtype=LABEL_DTYPE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GroupedModel(EnergyLensModel(), by=["workload"]).fit(t)
    assert len(g.models_) == 2
    before = g.predict(t)
    loaded = energylens.load_model(g.save(tmp_path / "groups"))
    np.testing.assert_array_equal(loaded.predict(t), before)
    np.testing.assert_array_equal(loaded.predict(t[t["workload"].isna()]),
                                  before[t["workload"].isna().to_numpy()])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(g)).predict(t), before)
    index = json.loads((tmp_path / "groups" / "groups.json").read_text())
    assert [e["key"] for e in index["groups"]] == [["chat"], [None]]


def test_exact_fit_of_real_data_loads(real_data, tmp_path):
    v2 = energylens.read_profiles(real_data / "mlenergy_v2")
    g = v2[(v2.model == "codellama/CodeLlama-13b-hf") & (v2.gpu == "A100-SXM4-40GB")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(g)
    loaded = energylens.load_model(m.save(tmp_path / "cl13.json"))
    np.testing.assert_array_equal(loaded.predict(g), m.predict(g))
    assert loaded._state_.cov.tobytes() == m._state_.cov.tobytes()


@pytest.mark.parametrize("entry", ["nan", "NaN", [], True])
def test_covariance_entries_are_still_numbers_or_null(entry, tmp_path):
    m = EnergyLensModel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(_exact_table())
    path = m.save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    data["fit"]["cov"][0][0] = entry
    with pytest.raises(ModelFileError, match=r"'fit.cov': expected a number, got"):
        energylens.load_model(_write(path, data))


# --------------------------------------------------------------------------- where saves write
def _hier():
    t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HierarchicalEnergyModel().fit(t)


def _fitted(kind: str, table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "closed form":
            return EnergyLensModel().fit(table)
        if kind == "latency":
            return LatencyModel(target="tpot_s").fit(table.assign(tpot_s=0.01 * table.batch_size ** 0.3))
        return _hier()


@pytest.mark.parametrize("kind", ["closed form", "latency", "hierarchical"])
def test_save_to_a_folder_names_the_folder(kind, table, tmp_path):
    m = _fitted(kind, table)
    folder = tmp_path / "qa_api"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder; a model is saved to a file") as exc:
        m.save(folder)
    assert f"'{folder}'" in str(exc.value) and ".tmp" not in str(exc.value)
    with pytest.raises(FileNotFoundError, match="absent' does not exist"):
        m.save(tmp_path / "absent" / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa_api"]


@pytest.mark.parametrize("kind", ["closed form", "latency", "hierarchical"])
def test_save_never_replaces_a_file_energylens_did_not_write(kind, table, tmp_path):
    m = _fitted(kind, table)
    script = tmp_path / "analysis.py"
    script.write_text("print('my work')\n")
    other = tmp_path / "config.json"
    other.write_text('{"format": "mine"}\n')
    for path in (script, other):
        before = path.read_bytes()
        with pytest.raises(FileExistsError, match="not an energylens model file.*force=True") as exc:
            m.save(path)
        assert f"'{path}'" in str(exc.value) and path.read_bytes() == before
    # saving twice to the same path is normal
    first = m.save(tmp_path / "m.json")
    assert m.save(first) == first
    # force replaces anything, atomically, with a loadable file
    assert m.save(script, force=True) == script
    assert type(energylens.load_model(script)) is type(m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.py", "config.json", "m.json"]


def test_grouped_save_checks_the_folder_and_its_files_before_writing(table, tmp_path):
    table = table.assign(gpu=np.where(table.index % 2, "a", "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GroupedModel(WilkinsModel()).fit(table)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(NotADirectoryError, match="is a file; a grouped model is saved to a folder"):
        g.save(notes)
    with pytest.raises(NotADirectoryError):
        g.save(notes, force=True)  # a file is never replaced by a folder
    assert notes.read_text() == "mine\n"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "me.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(FileExistsError, match="did not write.*force=True"):
        g.save(photos)
    assert sorted(p.name for p in photos.iterdir()) == ["me.jpg"]
    assert energylens.load_model(g.save(photos, force=True)).predict(table).shape == (len(table),)
    # a grouped model's folder is written again; a user's file in it with a group's name is not
    ours = g.save(tmp_path / "groups")
    assert g.save(ours) == ours
    victim = next(p for p in ours.iterdir() if p.name != "groups.json")
    victim.write_text("my notes\n")
    index = (ours / "groups.json").read_bytes()
    with pytest.raises(FileExistsError, match=victim.name):
        g.save(ours)
    assert victim.read_text() == "my notes\n" and (ours / "groups.json").read_bytes() == index
    g.save(ours, force=True)
    energylens.load_model(ours)


def test_grouped_save_over_an_earlier_one_removes_its_stale_group_files(table, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide = GroupedModel(WilkinsModel()).fit(table.assign(gpu=np.where(table.index % 2, "a", "b")))
        narrow = GroupedModel(WilkinsModel()).fit(table.assign(gpu="a"))
    folder = wide.save(tmp_path / "groups")
    mine = folder / "notes.txt"
    mine.write_text("mine\n")
    before = {p.name for p in folder.iterdir()}
    narrow.save(folder)
    after = {p.name for p in folder.iterdir()}
    listed = {e["file"] for e in json.loads((folder / "groups.json").read_text())["groups"]}
    assert after == listed | {"groups.json", "notes.txt"} and after < before
    assert mine.read_text() == "mine\n"  # only files of the earlier model go
    np.testing.assert_array_equal(energylens.load_model(folder).predict(table.assign(gpu="a")),
                                  narrow.predict(table.assign(gpu="a")))
