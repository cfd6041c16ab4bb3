"""The canonical schema and read_profiles: bad tables, fuzzing, units, aliases, derivations."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import energylens
from energylens.exceptions import EnergyLensWarning, ImplausibleValueWarning, SchemaError
from energylens.schema import (
    _CAP_ALIASES,
    ALIASES,
    COLUMNS,
    UNITS,
    _resolve_header,
    describe_schema,
    read_profiles,
    validate,
)

BAD = Path(__file__).parent / "data" / "bad"
CASES = json.loads((BAD / "cases.json").read_text())
GOOD = Path(__file__).parent / "data" / "good"
GOOD_EXPECTED = json.loads((GOOD / "expected.json").read_text())


def good(**over):
    d = {"model": ["m1", "m1", "m2"], "gpu": ["H100"] * 3, "tp": [1, 2, 4], "pp": [1, 1, 2],
         "batch_size": [8.0, 16, 32], "input_tokens": [128.0, 256, 512],
         "output_tokens": [64.0, 128, 256], "energy_j": [20.0, 35.0, 80.0]}
    d.update(over)
    return pd.DataFrame(d)


# --------------------------------------------------------------------------- bad tables
def test_there_are_at_least_thirty_bad_tables():
    assert len(CASES) >= 30
    assert all(os.path.lexists(BAD / c["file"]) for c in CASES)  # one is a symlink loop


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
    for line in case["lines"]:
        assert re.search(rf"\(file lines? [0-9, ]*\b{line}\b", msg) or \
            re.search(rf"\bline {line}\b", msg), msg
    if case.get("absent"):
        assert case["absent"] not in msg, msg
    assert "np.int64" not in msg and "np.float64" not in msg, msg
    assert isinstance(exc.value, ValueError)
    # the same facts, structured, for programs (the command line phrases its own advice)
    problems = exc.value.problems
    assert problems and all(p["source"] == f"'{path}'" for p in problems)
    if case["column"]:
        assert case["column"] in [p["column"] for p in problems]


def test_bad_case_files_are_all_in_the_manifest():
    on_disk = {p.name for p in BAD.iterdir() if p.name not in ("cases.json", "make_cases.py")}
    assert on_disk == {c["file"] for c in CASES}


# --------------------------------------------------------------------------- good tables
@pytest.mark.parametrize("name", sorted(GOOD_EXPECTED))
def test_good_table_reads_to_expected_values(name):
    out = read_profiles(GOOD / name)
    again = validate(out)
    pd.testing.assert_frame_equal(out, again)
    for col, want in GOOD_EXPECTED[name].items():
        got = out[col].tolist()
        if isinstance(want[0], str):
            assert got == want, col
        else:
            np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-12,
                                       err_msg=col)
    assert out.n_gpus.tolist() == (out.tp * out.pp * out.dp).tolist()


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
    with pytest.raises(SchemaError, match=r"no column \['E_tot'\] in the table"):
        read_profiles(df, columns={"E_tot": "energy_j"})


def test_duplicates_keep_mean_raise():
    df = pd.concat([good(), good().iloc[[0]].assign(energy_j=22.0)], ignore_index=True)
    with pytest.raises(SchemaError, match="duplicates='mean'"):
        read_profiles(df)
    mean = read_profiles(df, duplicates="mean")
    assert len(mean) == 3 and mean.energy_j.iloc[0] == pytest.approx(21.0)
    assert len(read_profiles(df, duplicates="keep")) == 4
    same = pd.concat([good(), good().iloc[[0]]], ignore_index=True)
    with pytest.warns(EnergyLensWarning, match="2 rows repeat 1 configuration"):
        assert len(read_profiles(same)) == 3  # identical repeats merge, and say so
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
_COLS = list(COLUMNS) + ["TP", "prompt_tokens", "energy_kwh", "latency_ms", "max_num_seqs", "junk",
                         "DP Size", "Avg BS (reqs)", "Energy (Wh)", "total_energy_kwh",
                         "num_requests", "Latency (ms)", "tensor_parallel", "osl", "bs"]
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


_SPELLINGS = {c: sorted({a for a, t in ALIASES.items() if t == c} | {c}) for c in COLUMNS}


@st.composite
def near_valid_frames(draw):
    """A valid table under random alias spellings, with a few cells or columns spoilt."""
    n = draw(st.integers(1, 6))
    base = {
        "model": draw(st.lists(st.sampled_from(["m1", "m2"]), min_size=n, max_size=n)),
        "gpu": ["H100"] * n,
        "tp": draw(st.lists(st.sampled_from([1, 2, 4]), min_size=n, max_size=n)),
        "batch_size": draw(st.lists(st.sampled_from([1, 8, 64]), min_size=n, max_size=n)),
        "input_tokens": draw(st.lists(st.floats(1, 4096), min_size=n, max_size=n)),
        "output_tokens": draw(st.lists(st.floats(1, 2048), min_size=n, max_size=n)),
        "energy_j": draw(st.lists(st.floats(1e-3, 1e5), min_size=n, max_size=n)),
    }
    optional = draw(st.lists(st.sampled_from(["pp", "dp", "ep", "running_batch", "n_requests",
                                              "latency_s", "batch_kind", "prefill_energy_j"]),
                             max_size=4, unique=True))
    for c in optional:
        base[c] = (draw(st.lists(st.sampled_from(["cap", "running"]), min_size=n, max_size=n))
                   if c == "batch_kind" else
                   draw(st.lists(st.integers(1, 128), min_size=n, max_size=n)))
    df = pd.DataFrame(base)
    df = df.rename(columns={c: draw(st.sampled_from(_SPELLINGS[c])) for c in df.columns})
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["cell", "drop", "dup"]))
        col = draw(st.sampled_from(list(df.columns)))
        if action == "cell":
            row = draw(st.integers(0, n - 1))
            df[col] = df[col].astype(object)
            df.loc[row, col] = draw(_values)
        elif action == "drop":
            df = df.drop(columns=col)
        else:
            df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    return df


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(frames(), near_valid_frames()), st.sampled_from(["raise", "mean", "keep"]))
def test_fuzz_read_profiles_valid_or_schema_error(df, duplicates):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = read_profiles(df, duplicates=duplicates)
        except SchemaError:
            return
        assert (out.energy_j > 0).all() and (out.tp >= 1).all()
        assert (out.input_tokens > 0).all() and (out.output_tokens > 0).all()
        assert (out.n_gpus == out.tp * out.pp * out.dp).all()
        assert set(out.batch_kind) <= {"running", "cap"}
        assert out.model.map(lambda v: isinstance(v, str) and v != "").all()
        again = validate(out, duplicates=duplicates)  # idempotent
        pd.testing.assert_frame_equal(again, out)


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


# --------------------------------------------------------------------------- headers
@pytest.mark.parametrize("header, expected", [
    ("Energy (Wh)", ("energy_j", 3600.0, False)),
    ("energy_per_req_mj", ("energy_j", 1e-3, False)),
    ("Latency (ms)", ("latency_s", 1e-3, False)),
    ("DP Size", ("dp", 1.0, False)),
    ("Avg BS (reqs)", ("running_batch", 1.0, False)),
    ("Max BS (reqs)", ("batch_size", 1.0, True)),
    ("max_num_seqs", ("batch_size", 1.0, True)),
    ("  TP  ", ("tp", 1.0, False)),
    ("E2E latency (s)", ("latency_s", 1.0, False)),
    ("TTFT [us]", ("ttft_s", 1e-6, False)),
    ("Power (kW)", ("power_w", 1e3, False)),
    ("total_energy_kwh", ("run_energy_j", 3.6e6, False)),
    ("duration_min", ("duration_s", 60.0, False)),
    ("energy_per_output_token_j", ("energy_per_output_token_j", 1.0, False)),
    # a unit of the wrong dimension, or a unit on a unitless column, is not guessed
    ("energy_ms", (None, 1.0, False)),
    ("latency_kwh", (None, 1.0, False)),
    ("tp_ms", (None, 1.0, False)),
    ("batch_size_wh", (None, 1.0, False)),
    ("comment", (None, 1.0, False)),
    ("", (None, 1.0, False)),
    (3, (None, 1.0, False)),
])
def test_resolve_header_edge_cases(header, expected):
    got = _resolve_header(header)
    assert got[0] == expected[0] and got[2] == expected[2]
    assert got[1] == pytest.approx(expected[1])


def test_unknown_columns_are_kept_under_their_own_names():
    out = read_profiles(good(comment=["a", "b", "c"], energy_ms=[1.0, 2, 3]))
    assert out.comment.tolist() == ["a", "b", "c"] and out.energy_ms.tolist() == [1, 2, 3]
    assert list(out.columns[-2:]) == ["comment", "energy_ms"]


def test_every_cap_alias_sets_cap_unless_batch_kind_is_given():
    for alias in _CAP_ALIASES:
        out = read_profiles(good().rename(columns={"batch_size": alias}))
        assert (out.batch_kind == "cap").all(), alias
    own = good(batch_kind=["running"] * 3).rename(columns={"batch_size": "max_num_seqs"})
    assert (read_profiles(own).batch_kind == "running").all()


# --------------------------------------------------------------------------- units
_TIME_HEADERS = {"ms": "latency_ms", "us": "latency_us", "min": "latency_min", "h": "latency_h",
                 "s": "latency_s", "sec": "latency_sec", "secs": "latency_secs",
                 "seconds": "latency_seconds"}


@pytest.mark.parametrize("unit", sorted(UNITS["time"]))
def test_time_unit_round_trip_by_suffix_and_by_units(unit):
    seconds = np.array([0.5, 2.0, 30.0])
    factor = UNITS["time"][unit]
    by_suffix = read_profiles(good().assign(**{_TIME_HEADERS[unit]: seconds / factor}))
    np.testing.assert_allclose(by_suffix.latency_s, seconds, rtol=1e-12)
    by_arg = read_profiles(good(ttft_s=seconds / factor), units={"ttft_s": unit})
    np.testing.assert_allclose(by_arg.ttft_s, seconds, rtol=1e-12)


@pytest.mark.parametrize("unit", sorted(UNITS["power"]))
def test_power_unit_round_trip(unit):
    watts = np.array([300.0, 700.0, 2800.0])
    out = read_profiles(good(power=watts / UNITS["power"][unit]), units={"power": unit})
    np.testing.assert_allclose(out.power_w, watts, rtol=1e-12)


def test_energy_unit_chain_through_files(tmp_path):
    """J -> mJ -> kJ -> Wh -> kWh: every spelling of one table reads to the same joules."""
    joules = np.array([20.0, 35.0, 80.0])
    reads = []
    for unit, header in [("j", "energy_j"), ("mj", "energy_mj"), ("kj", "Energy (kJ)"),
                         ("wh", "Energy [Wh]"), ("kwh", "energy_per_req_kwh")]:
        path = tmp_path / f"{unit}.csv"
        good().drop(columns="energy_j").assign(
            **{header: joules / UNITS["energy"][unit]}).to_csv(path, index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a correct conversion is never implausible
            reads.append(read_profiles(path).energy_j.to_numpy())
    for r in reads:
        np.testing.assert_allclose(r, joules, rtol=1e-12)


def test_units_argument_overrides_suffix_and_rejects_unitless_columns():
    df = good().drop(columns="energy_j").assign(energy_kwh=[20.0, 35, 80])
    out = read_profiles(df, units={"energy_kwh": "J"})  # the header lied; units= wins
    np.testing.assert_allclose(out.energy_j, [20.0, 35, 80])
    out = read_profiles(df, units={"energy_j": "j"})  # keyed by the canonical name
    np.testing.assert_allclose(out.energy_j, [20.0, 35, 80])
    with pytest.raises(SchemaError, match="column 'tp' has no physical unit"):
        read_profiles(good(), units={"tp": "ms"})
    with pytest.raises(SchemaError, match="unknown energy unit 'cal'.*'MJ', 'mJ'"):
        read_profiles(good(), units={"energy_j": "cal"})


@pytest.mark.parametrize("header, factor", [
    ("Energy (MJ)", 1e6), ("energy_MJ", 1e6), ("Energy [MWh]", 3.6e9), ("energy_GJ", 1e9),
    ("Energy (mJ)", 1e-3), ("energy_mJ", 1e-3), ("energy_mj", 1e-3), ("ENERGY_mJ", 1e-3),
    ("Energy (kWh)", 3.6e6), ("ENERGY_KWH", 3.6e6), ("Energy (KWh)", 3.6e6),
    ("Energy (mWh)", 3.6),
])
def test_unit_prefixes_are_read_by_their_case_where_it_changes_the_meaning(header, factor):
    """M is mega and m milli: Energy (MJ) is megajoules, never millijoules; every other
    unit reads in any case."""
    got = _resolve_header(header)
    assert got[0] == "energy_j" and got[1] == pytest.approx(factor)


@pytest.mark.parametrize("header, column, factor", [
    ("Power (MW)", "power_w", 1e6), ("power_mW", "power_w", 1e-3), ("power_mw", "power_w", 1e-3),
    ("Power (kW)", "power_w", 1e3), ("POWER_KW", "power_w", 1e3),
    ("total_energy_MWh", "run_energy_j", 3.6e9), ("Latency (MS)", "latency_s", 1e-3),
])
def test_power_and_run_energy_prefixes_follow_the_same_rule(header, column, factor):
    got = _resolve_header(header)
    assert got[0] == column and got[1] == pytest.approx(factor)


def test_units_argument_reads_mega_and_milli_by_case():
    joules = np.array([20.0, 35.0, 80.0])
    for unit, f in (("MJ", 1e6), ("mJ", 1e-3), ("mj", 1e-3), ("MWh", 3.6e9), ("GJ", 1e9)):
        out = read_profiles(good(energy=joules / f).drop(columns="energy_j"),
                            units={"energy": unit})
        np.testing.assert_allclose(out.energy_j, joules, rtol=1e-12)
    watts = np.array([300.0, 500.0, 700.0])
    out = read_profiles(good(power=watts / 1e6), units={"power": "MW"})
    np.testing.assert_allclose(out.power_w, watts, rtol=1e-12)


def test_a_header_in_capitals_leaves_mega_or_milli_ambiguous():
    """ENERGY_MJ may be a shouted mJ: refused, naming the header and the spellings that
    settle it, unless units= names its unit."""
    df = good().drop(columns="energy_j").assign(ENERGY_MJ=[2e-5, 3.5e-5, 8e-5])
    with pytest.raises(SchemaError) as err:
        read_profiles(df)
    msg = str(err.value)
    assert "column 'ENERGY_MJ'" in msg and "ambiguous" in msg
    assert "units={'ENERGY_MJ': 'MJ'}" in msg and "units={'ENERGY_MJ': 'mJ'}" in msg
    assert "MJ, mJ, MWh, mWh" in msg  # the accepted spellings
    assert err.value.problems[0]["code"] == "ambiguous_unit"
    out = read_profiles(df, units={"ENERGY_MJ": "MJ"})
    np.testing.assert_allclose(out.energy_j, [20.0, 35.0, 80.0])
    with pytest.raises(ValueError, match="header 'POWER_MW'.*ambiguous"):
        _resolve_header("POWER_MW")


def test_unit_conversion_keeps_bad_entries_for_the_message():
    df = good().drop(columns="energy_j").assign(energy_kwh=pd.Series([1e-5, "x", 2e-5],
                                                                     dtype=object))
    with pytest.raises(SchemaError, match=r"column 'energy_j': non-numeric.*row 1 \(value 'x'\)"):
        read_profiles(df)


# --------------------------------------------------------------------------- batch columns
def test_batch_size_and_running_batch_are_both_kept():
    out = read_profiles(good(running_batch=[6.0, 30.0, 20.0]))
    assert out.batch_size.tolist() == [8, 16, 32]
    assert out.running_batch.tolist() == [6, 30, 20]  # 'running' batch_size: not compared
    assert (out.batch_kind == "running").all()


def test_running_batch_may_not_exceed_a_cap():
    capped = good(running_batch=[8.0, 12.0, 32.0], batch_kind=["cap"] * 3)
    assert read_profiles(capped).running_batch.tolist() == [8, 12, 32]  # equal to cap: fine
    over = capped.assign(running_batch=[8.0, 17.0, 64.0])
    with pytest.raises(SchemaError) as exc:
        read_profiles(over)
    msg = str(exc.value)
    assert "column 'running_batch': must not exceed batch_size" in msg
    assert "2 offending rows: row 1 (value 17.0), row 2 (value 64.0)" in msg
    via_alias = good(**{"Avg BS (reqs)": [8.0, 17.0, 1.0]}).rename(
        columns={"batch_size": "max_num_seqs"})
    with pytest.raises(SchemaError, match="row 1"):
        read_profiles(via_alias)


def test_cap_alias_next_to_batch_size_is_an_error_with_a_hint():
    df = good(max_num_seqs=[64, 64, 64])
    with pytest.raises(SchemaError, match="rename it to 'running_batch'"):
        read_profiles(df)
    # the suggested fix reads both
    out = read_profiles(df.rename(columns={"batch_size": "running_batch"}))
    assert out.batch_size.tolist() == [64] * 3 and out.running_batch.tolist() == [8, 16, 32]
    assert (out.batch_kind == "cap").all()
    # an explicit mapping is the other way out
    out = read_profiles(df, columns={"batch_size": "running_batch"})
    assert out.running_batch.tolist() == [8, 16, 32]


# --------------------------------------------------------------------------- more behaviour
def test_implausibly_small_energy_warns_too():
    with pytest.warns(ImplausibleValueWarning, match=r"looks like .*Wh.*not joules"):
        read_profiles(good(energy_j=[1e-4, 1e-4, 1e-4]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_profiles(good())  # ordinary values do not warn


def test_file_input_is_not_modified(tmp_path):
    path = tmp_path / "t.csv"
    good(TP=[1, 2, 4]).drop(columns="tp").to_csv(path, index=False)
    before = path.read_bytes()
    read_profiles(path)
    assert path.read_bytes() == before


def test_dataframe_rows_are_named_by_index_label():
    df = good(energy_j=[20.0, -1.0, 3.0])
    df.index = ["a", "b", "c"]
    with pytest.raises(SchemaError, match=r"row b \(value -1.0\)") as exc:
        read_profiles(df)
    assert "file line" not in str(exc.value)


def test_json_lines_parse_errors_name_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"model": "m"}\n\n{"model": oops}\n')
    with pytest.raises(SchemaError, match="line 3 is not valid JSON"):
        read_profiles(path)
    path.write_text('{"model": "m"}\n[1, 2]\n')
    with pytest.raises(SchemaError, match="line 2 holds a JSON list"):
        read_profiles(path)


def test_json_array_and_compressed_csv(tmp_path):
    good().to_json(tmp_path / "t.json", orient="records")
    np.testing.assert_allclose(read_profiles(tmp_path / "t.json").energy_j, good().energy_j)
    good(energy_j=[20.0, 0.0, 30.0]).to_csv(tmp_path / "t.csv.gz", index=False)
    with pytest.raises(SchemaError, match=r"row 1 .*\(file line 3\)"):
        read_profiles(tmp_path / "t.csv.gz")


def test_quoted_line_breaks_give_each_rows_first_line(tmp_path):
    path = tmp_path / "t.csv"
    good(model=["a\nb", "m", "m"], energy_j=[20.0, 35.0, -1.0]).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"row 2 \(value -1.0\) \(file line 5\)"):
        read_profiles(path)  # row 0 spans lines 2-3


def test_validate_line_offset_forms():
    bad = good(energy_j=[20.0, -1.0, 3.0])
    with pytest.raises(SchemaError, match=r"\(file line 12\)"):
        validate(bad, line_offset=11)
    with pytest.raises(SchemaError, match=r"\(file line 40\)"):
        validate(bad, line_offset=[7, 40, 41])
    with pytest.raises(ValueError, match="3 rows"):
        validate(bad, line_offset=[1, 2])


def test_validate_rejects_non_dataframes_and_repeated_headers():
    with pytest.raises(SchemaError, match="expected a DataFrame"):
        validate([1, 2, 3])
    df = pd.concat([good(), good()[["tp"]]], axis=1)
    with pytest.raises(SchemaError, match=r"\['tp'\] appear more than once"):
        validate(df)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(frames(), near_valid_frames()), st.sampled_from(["csv", "jsonl", "parquet"]))
def test_fuzz_files_valid_or_schema_error(df, fmt):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / f"t.{fmt}"
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        if fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "jsonl":
            df.to_json(path, orient="records", lines=True)
        else:
            try:
                df.to_parquet(path, index=False)
            except (ValueError, TypeError, ArithmeticError, ImportError, OSError) as exc:
                if type(exc).__module__.startswith("pyarrow"):
                    return  # mixed object columns have no parquet type
                raise
        try:
            out = read_profiles(path)
        except SchemaError as exc:
            assert str(path) in str(exc)
            return
        pd.testing.assert_frame_equal(validate(out), out)


# ---- candidates ------------------------------------------------------------------------
def test_read_candidates_maps_aliases_units_and_defaults():
    from energylens import read_candidates

    raw = pd.DataFrame({"TP": [1, 2, 2], "PP": [1, 1, 2], "max_num_seqs": [32, 32, 32],
                        "prompt_tokens": [512, 512, 512], "output_tokens": [128, 128, 128],
                        "Latency (ms)": [900.0, 500.0, 700.0]})
    before = raw.copy()
    c = read_candidates(raw)
    pd.testing.assert_frame_equal(raw, before)  # never modified in place
    assert c.tp.tolist() == [1, 2, 2] and c.n_gpus.tolist() == [1, 2, 4]
    assert (c.batch_kind == "cap").all() and (c.dp == 1).all()
    np.testing.assert_allclose(c.latency_s, [0.9, 0.5, 0.7])
    assert "energy_j" not in c.columns


def test_read_candidates_keeps_repeats_and_needs_only_the_configuration():
    from energylens import read_candidates

    raw = pd.DataFrame({"tp": [1, 1], "batch_size": [8, 8], "input_tokens": [64, 64],
                        "output_tokens": [32, 32]})
    assert len(read_candidates(raw)) == 2
    with pytest.raises(SchemaError, match="'batch_size': required column is missing"):
        read_candidates(raw.drop(columns="batch_size"))


def test_read_candidates_names_every_bad_row(tmp_path):
    from energylens import read_candidates

    path = tmp_path / "cand.csv"
    pd.DataFrame({"tp": [1, 3.5, 2, -1], "batch_size": [8, 8, 0, 8],
                  "input_tokens": [64, 64, 64, 64], "output_tokens": [32, 32, 32, 32]}
                 ).to_csv(path, index=False)
    with pytest.raises(SchemaError) as info:
        read_candidates(path)
    msg = str(info.value)
    assert str(path) in msg and "3 problems" in msg
    assert "'tp': must be a whole number" in msg and "'tp': must be >= 1" in msg
    assert "'batch_size'" in msg and "line 4" in msg


def test_the_micro_sign_is_a_unit_prefix_not_dropped():
    """'µs' once normalised to 's': microseconds read as seconds, a factor of a million."""
    df = good().assign(**{"TPOT (µs)": [25_000.0, 30_000.0, 40_000.0]}).drop(columns="energy_j")
    df["Energy (μJ)"] = [2e7, 3.5e7, 8e7]  # the Greek mu, as some exporters write it
    out = read_profiles(df)
    np.testing.assert_allclose(out.tpot_s, [0.025, 0.03, 0.04])
    np.testing.assert_allclose(out.energy_j, [20.0, 35.0, 80.0])
