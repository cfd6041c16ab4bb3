"""The canonical schema and read_profiles: bad tables, fuzzing, units, aliases, derivations."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import energylens
from energylens.exceptions import ImplausibleValueWarning, SchemaError
from energylens.schema import ALIASES, COLUMNS, UNITS, describe_schema, read_profiles, validate

BAD = Path(__file__).parent / "data" / "bad"
CASES = json.loads((BAD / "cases.json").read_text())


def good(**over):
    d = {"model": ["m1", "m1", "m2"], "gpu": ["H100"] * 3, "tp": [1, 2, 4], "pp": [1, 1, 2],
         "batch_size": [8.0, 16, 32], "input_tokens": [128.0, 256, 512],
         "output_tokens": [64.0, 128, 256], "energy_j": [20.0, 35.0, 80.0]}
    d.update(over)
    return pd.DataFrame(d)


# --------------------------------------------------------------------------- bad tables
def test_there_are_at_least_thirty_bad_tables():
    assert len(CASES) >= 30
    assert all((BAD / c["file"]).exists() for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_table_is_rejected_with_file_column_rows(case):
    path = BAD / case["file"]
    with pytest.raises(SchemaError) as exc:
        read_profiles(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert case["fragment"] in msg, msg
    if case["column"]:
        assert f"column '{case['column']}'" in msg, msg
    for r in case["rows"]:
        assert re.search(rf"\brow {r}\b", msg), msg
    assert isinstance(exc.value, ValueError)


def test_all_problems_reported_at_once_with_line_numbers(tmp_path):
    df = good(tp=[0, 2, 4], energy_j=[20.0, -1.0, "x"])
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(SchemaError) as exc:
        read_profiles(path)
    msg = str(exc.value)
    assert "3 problems" in msg
    assert "column 'tp'" in msg and "column 'energy_j'" in msg
    assert "file line 2" in msg  # row 0 is on line 2, after the header
    assert len(exc.value.problems) == 3


def test_at_most_five_rows_listed():
    n = 12
    df = pd.DataFrame({"model": ["m"] * n, "gpu": ["g"] * n, "tp": [1] * n, "batch_size": np.arange(1.0, n + 1),
                       "input_tokens": [1.0] * n, "output_tokens": [1.0] * n, "energy_j": [-1.0] * n})
    with pytest.raises(SchemaError, match="12 offending rows: .* and 7 more"):
        read_profiles(df)


# --------------------------------------------------------------------------- behaviour
def test_input_never_modified():
    df = good(TP=[1, 2, 4]).drop(columns="tp")
    before = df.copy()
    out = read_profiles(df)
    pd.testing.assert_frame_equal(df, before)
    assert out is not df and "tp" in out.columns


def test_defaults_and_derived_columns():
    out = read_profiles(good())
    assert (out.pp == [1, 1, 2]).all() and (out.dp == 1).all()
    assert (out.batch_kind == "running").all()
    assert (out.n_gpus == out.tp * out.pp * out.dp).all()
    np.testing.assert_allclose(out.energy_per_output_token_j, out.energy_j / out.output_tokens)
    assert out.tp.dtype == np.int64 and out.energy_j.dtype == float


def test_energy_derived_from_run_totals_and_phases():
    runs = good(run_energy_j=[200.0, 350, 800], n_requests=[10, 10, 10]).drop(columns="energy_j")
    np.testing.assert_allclose(read_profiles(runs).energy_j, [20.0, 35.0, 80.0])
    phases = good(prefill_energy_j=[5.0, 5, 5], decode_energy_j=[15.0, 30, 75]).drop(columns="energy_j")
    np.testing.assert_allclose(read_profiles(phases).energy_j, [20.0, 35.0, 80.0])


def test_cap_alias_sets_batch_kind():
    df = good().rename(columns={"batch_size": "max_num_seqs"})
    out = read_profiles(df)
    assert (out.batch_kind == "cap").all()


@pytest.mark.parametrize("alias, canonical", sorted(ALIASES.items()))
def test_every_alias_resolves(alias, canonical):
    df = good()
    if canonical in df.columns:
        df = df.rename(columns={canonical: alias})
    else:
        extra = {"str": "x", "int": 1, "float": 2.0}[COLUMNS[canonical].dtype]
        if canonical == "batch_kind":
            extra = "cap"
        df[alias] = extra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = read_profiles(df)
    assert canonical in out.columns


@pytest.mark.parametrize("header, factor", [
    ("energy_mj", 1e-3), ("energy_kj", 1e3), ("energy_wh", 3600.0), ("energy_kwh", 3.6e6),
    ("Energy (Wh)", 3600.0), ("energy_per_req_mj", 1e-3), ("energy_j", 1.0),
])
def test_energy_units_by_suffix(header, factor):
    df = good(energy_j=[0.02, 0.035, 0.08]).rename(columns={"energy_j": header})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImplausibleValueWarning)
        out = read_profiles(df)
    np.testing.assert_allclose(out.energy_j, np.array([0.02, 0.035, 0.08]) * factor)


@pytest.mark.parametrize("unit", sorted(UNITS["energy"]))
def test_energy_unit_round_trip(unit):
    joules = np.array([20.0, 35.0, 80.0])
    factor = UNITS["energy"][unit]
    out = read_profiles(good(energy_j=joules / factor), units={"energy_j": unit})
    np.testing.assert_allclose(out.energy_j, joules, rtol=1e-12)


def test_time_units_and_explicit_units_override():
    df = good(latency_ms=[100.0, 200, 300], **{"TTFT": [5.0, 6, 7]})
    out = read_profiles(df, units={"TTFT": "ms"})
    np.testing.assert_allclose(out.latency_s, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(out.ttft_s, [0.005, 0.006, 0.007])
    with pytest.raises(SchemaError, match="unknown time unit 'fortnight'"):
        read_profiles(df, units={"TTFT": "fortnight"})
    with pytest.raises(SchemaError, match="no column 'nope'"):
        read_profiles(df, units={"nope": "ms"})


def test_explicit_columns_mapping():
    df = good().rename(columns={"energy_j": "E_total"})
    out = read_profiles(df, columns={"E_total": "energy_j"})
    assert "energy_j" in out.columns
    with pytest.raises(SchemaError, match="not canonical column names"):
        read_profiles(df, columns={"E_total": "joules"})


def test_duplicates_keep_mean_raise():
    df = pd.concat([good(), good().iloc[[0]].assign(energy_j=22.0)], ignore_index=True)
    with pytest.raises(SchemaError, match="duplicates='mean'"):
        read_profiles(df)
    mean = read_profiles(df, duplicates="mean")
    assert len(mean) == 3 and mean.energy_j.iloc[0] == pytest.approx(21.0)
    assert len(read_profiles(df, duplicates="keep")) == 4
    same = pd.concat([good(), good().iloc[[0]]], ignore_index=True)
    assert len(read_profiles(same)) == 3  # identical repeats collapse silently
    with pytest.raises(ValueError, match="'duplicates' parameter"):
        read_profiles(df, duplicates="first")


def test_implausible_energy_warns():
    with pytest.warns(ImplausibleValueWarning, match="unit mistake"):
        read_profiles(good(energy_j=[2e5, 3e5, 4e5]))


def test_parquet_and_jsonl(tmp_path):
    df = good()
    df.to_parquet(tmp_path / "t.parquet")
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name in ("t.parquet", "t.jsonl"):
        out = read_profiles(tmp_path / name)
        np.testing.assert_allclose(out.energy_j, df.energy_j)


def test_missing_file_and_bad_source(tmp_path):
    with pytest.raises(SchemaError, match="no such file"):
        read_profiles(tmp_path / "absent.csv")
    with pytest.raises(TypeError, match="path or a DataFrame"):
        read_profiles(42)


def test_colliding_headers_are_reported():
    df = good()
    df["TP"] = [8, 8, 8]  # both 'tp' and 'TP' mean tp: never guess which one is right
    with pytest.raises(SchemaError, match="columns 'tp' and 'TP' both mean 'tp'"):
        read_profiles(df)
    df["energy_kwh"] = 1e-5
    with pytest.raises(SchemaError, match="both mean"):
        read_profiles(df.drop(columns="TP"))


def test_describe_schema_and_validate_idempotent():
    d = describe_schema()
    assert d.loc["energy_j", "unit"] == "J" and d.loc["tp", "bounds"] == ">= 1"
    out = read_profiles(good())
    again = validate(out)
    pd.testing.assert_frame_equal(out, again)


def test_demo_table_reads():
    path = Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv"
    assert len(energylens.read_profiles(path)) > 500


# --------------------------------------------------------------------------- fuzzing
_COLS = list(COLUMNS) + ["TP", "prompt_tokens", "energy_kwh", "latency_ms", "max_num_seqs", "junk"]
_values = st.one_of(
    st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.text(max_size=4), st.booleans(), st.none(),
)


@st.composite
def frames(draw):
    cols = draw(st.lists(st.sampled_from(_COLS), min_size=0, max_size=12, unique=True))
    n = draw(st.integers(0, 6))
    data = {}
    for c in cols:
        kind = draw(st.sampled_from(["int", "float", "str", "mixed"]))
        if kind == "int":
            data[c] = draw(st.lists(st.integers(-3, 2000), min_size=n, max_size=n))
        elif kind == "float":
            data[c] = draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=n, max_size=n))
        elif kind == "str":
            data[c] = draw(st.lists(st.sampled_from(["a", "cap", "running", "1", ""]), min_size=n, max_size=n))
        else:
            data[c] = pd.Series(draw(st.lists(_values, min_size=n, max_size=n)), dtype=object)
    return pd.DataFrame(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.sampled_from(["raise", "mean", "keep"]))
def test_fuzz_read_profiles_valid_or_schema_error(df, duplicates):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = read_profiles(df, duplicates=duplicates)
        except SchemaError:
            return
        assert (out.energy_j > 0).all() and (out.tp >= 1).all()
        assert (out.input_tokens > 0).all() and (out.output_tokens > 0).all()
        again = read_profiles(out, duplicates="keep")
        assert len(again) == len(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 8), st.floats(0.1, 1e4), st.floats(1, 4096),
                          st.floats(1, 2048), st.floats(1e-3, 1e5)), min_size=1, max_size=8))
def test_fuzz_valid_tables_round_trip(rows):
    df = pd.DataFrame(rows, columns=["tp", "batch_size", "input_tokens", "output_tokens", "energy_j"])
    df.insert(0, "model", "m")
    df.insert(1, "gpu", "g")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = read_profiles(df, duplicates="keep")
    np.testing.assert_allclose(out.energy_j.to_numpy(), df.energy_j.to_numpy())
