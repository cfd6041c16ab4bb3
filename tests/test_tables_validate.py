"""Validation: physical bounds per column, repeated configurations, the unit check per group."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from energylens.exceptions import EnergyLensWarning, ImplausibleValueWarning, SchemaError
from energylens.tables import COLUMNS, describe_schema, read_profiles, validate
from energylens.tables.plausibility import token_bounds


def good(n: int = 3, **over) -> pd.DataFrame:
    d = {"model": ["m1", "m1", "m2"][:n], "gpu": ["H100"] * n, "tp": [1, 2, 4][:n],
         "batch_size": [8.0, 16, 32][:n], "input_tokens": [128.0, 256, 512][:n],
         "output_tokens": [64.0, 128, 256][:n], "energy_j": [20.0, 35.0, 80.0][:n]}
    d.update(over)
    return pd.DataFrame(d)


BOUNDED = [c for c in COLUMNS.values() if c.floor is not None or c.ceiling is not None]


def test_every_quantity_declares_a_physical_range_with_a_reason():
    for c in COLUMNS.values():
        if c.dtype in ("float", "int") and c.role != "derived":
            assert c.ceiling is not None and c.why and c.what, c.name
    s = describe_schema()
    assert s.loc["energy_j", "ceiling"] == 1e9 and s.loc["batch_size", "floor"] == 1e-3
    assert "FLOP/J" in s.loc["energy_j", "why"]


def _with(col: str, value: float) -> pd.DataFrame:
    df = good()
    if col not in df.columns:
        df[col] = {"int": 1, "float": 1.0}[COLUMNS[col].dtype]
    df[col] = df[col].astype(float)
    df.loc[1, col] = value
    if col in ("prefill_energy_j", "decode_energy_j"):
        df = df.assign(energy_j=df["energy_j"])
    if col == "ep":  # experts spread over the layout's GPUs: as many data-parallel replicas
        df["dp"] = df["ep"].astype(int)
    return df


@pytest.mark.parametrize("col", [c.name for c in BOUNDED if c.ceiling is not None])
def test_values_above_the_physical_ceiling_are_errors(col):
    ceiling = COLUMNS[col].ceiling
    with pytest.raises(SchemaError, match=rf"'{col}': implausibly large for .*row 1"):
        read_profiles(_with(col, 10.0 ** np.ceil(np.log10(ceiling) + 1)), duplicates="keep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_profiles(_with(col, ceiling), duplicates="keep")  # the bound itself is allowed


@pytest.mark.parametrize("col", [c.name for c in BOUNDED if c.floor is not None])
def test_values_below_the_physical_floor_are_errors(col):
    floor = COLUMNS[col].floor
    with pytest.raises(SchemaError, match=rf"'{col}': implausibly small for .*row 1"):
        read_profiles(_with(col, floor / 10), duplicates="keep")


@pytest.mark.parametrize("col, value", [("batch_size", 5e-324), ("output_tokens", 1e-310),
                                        ("energy_j", 1e308), ("input_tokens", 1e-300)])
def test_the_values_of_issue_13_never_reach_a_derived_infinity(col, value):
    with pytest.raises(SchemaError, match=f"'{col}': implausibly"):
        read_profiles(good(**{col: [value, 2.0, 3.0] if col != "energy_j" else [value, 1, 1]}))


# --------------------------------------------------------------------------- duplicates
def test_identical_rows_are_merged_with_a_count():
    df = pd.concat([good()] + [good().iloc[[0]]] * 4, ignore_index=True)
    with pytest.warns(EnergyLensWarning, match=r"5 rows repeat 1 configuration.*4 row\(s\) fewer"):
        out = read_profiles(df)
    assert len(out) == 3


def test_repeats_that_differ_in_an_unkeyed_column_are_not_offered_averaging():
    df = pd.concat([good().assign(run="a"), good().iloc[[0]].assign(run="b", energy_j=22.0)],
                   ignore_index=True)
    with pytest.raises(SchemaError) as exc:
        read_profiles(df)
    msg = str(exc.value)
    assert "differ in ['run']" in msg and "duplicates='mean'" not in msg
    assert exc.value.problems[0]["code"] == "duplicate_unkeyed"
    assert exc.value.problems[0]["advice"] == []
    with pytest.warns(EnergyLensWarning, match=r"differ in \['run'\].*leave these columns blank"):
        out = read_profiles(df, duplicates="mean")  # asked for explicitly: averaged
    assert len(out) == 3 and out.energy_j.iloc[0] == pytest.approx(21.0)
    assert pd.isna(out.run.iloc[0]) and out.run.iloc[1] == "a"  # not the first run's label


def test_mean_keeps_first_labels_and_the_row_order():
    df = pd.concat([good(), good().iloc[[1]].assign(energy_j=45.0)], ignore_index=True)
    out = read_profiles(df, duplicates="mean")
    assert out.energy_j.tolist() == [20.0, 40.0, 80.0]
    assert out.model.tolist() == ["m1", "m1", "m2"]


def test_missing_optional_labels_still_match_as_one_configuration():
    df = good(precision=[None, "bf16", "bf16"])
    df = pd.concat([df, df.iloc[[0]].assign(energy_j=30.0)], ignore_index=True)
    with pytest.raises(SchemaError, match="conflicting energies"):
        read_profiles(df)


# --------------------------------------------------------------------------- unit check
def _many_groups(scale: float) -> pd.DataFrame:
    rows = []
    for model, gpu, params in [("8b", "H100", 8.0), ("70b", "H100", 70.0), ("8b", "A100", 8.0)]:
        for b in (1, 8, 64, 256):
            out = 256.0
            per_token = (0.5 if b == 1 else 0.05) * params / 8  # J/token, plausible
            rows.append({"model": model, "gpu": gpu, "tp": 1, "batch_size": float(b),
                         "input_tokens": 512.0, "output_tokens": out, "params_b": params,
                         "energy_j": per_token * out * scale})
    return pd.DataFrame(rows)


def test_energy_in_wh_is_named_once_per_table():
    with pytest.warns(ImplausibleValueWarning) as rec:
        read_profiles(_many_groups(1 / 3600))
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "3 of 3 (model, gpu) groups" in msg
    # kJ, Wh and kWh all give plausible values here: each is named, none is presumed
    assert all(f"x{f:g} ({u})" in msg for u, f in (("kJ", 1e3), ("Wh", 3600), ("kWh", 3.6e6)))
    assert "units={'energy_j': " in msg


def test_energy_in_kj_is_not_called_wh():
    """kJ energies were 'this looks like Wh': following it gave energies 3.6x too large."""
    with pytest.warns(ImplausibleValueWarning, match=r"looks like .*kJ.*x1000 \(kJ\)"):
        read_profiles(_many_groups(1e-3))


def test_parameter_counts_in_millions_are_suspected_before_the_energy_unit():
    millions = _many_groups(1.0).assign(params_b=lambda d: d.params_b * 1000)
    with pytest.warns(ImplausibleValueWarning, match=r"params_b reaches 7e\+04.*in millions"):
        read_profiles(millions)


def test_energy_in_kwh_and_per_run_are_named():
    with pytest.warns(ImplausibleValueWarning, match="this looks like kWh"):
        read_profiles(_many_groups(1 / 3.6e6))
    with pytest.warns(ImplausibleValueWarning, match="energy of a whole run"):
        read_profiles(_many_groups(1e5))


def test_joules_do_not_warn_and_the_floor_follows_the_model_size():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_profiles(_many_groups(1.0))
    floor, ceiling = token_bounds(pd.DataFrame({"params_b": [8.0, 70.0], "n_gpus": [1, 8]}))
    np.testing.assert_allclose(floor, [1.6e-3, 1.4e-2])
    np.testing.assert_allclose(ceiling, [1e3, 8e3])


# --------------------------------------------------------------------------- types
def test_labels_come_back_as_strings_and_validation_is_idempotent():
    df = good(model=[" m1", 7, "m2 "], precision=["bf16", None, "fp8"])
    out = read_profiles(df.astype({"model": object}))
    assert out.model.tolist() == ["m1", "7", "m2"]
    assert out.precision.isna().tolist() == [False, True, False]
    assert pd.api.types.is_string_dtype(out.model)
    pd.testing.assert_frame_equal(validate(out), out)


def test_validate_never_modifies_its_input():
    df = good(tp=[1.0, 2.0, 4.0], model=[" a", "b", "c"])
    before = df.copy()
    validate(df)
    pd.testing.assert_frame_equal(df, before)


def test_option_errors_use_the_shared_grammar():
    with pytest.raises(ValueError, match="'duplicates' parameter of validate must be"):
        validate(good(), duplicates="first")
    with pytest.raises(ValueError, match="'layout' parameter of read_profiles must be"):
        read_profiles(good(), layout="zip")


# --------------------------------------------------------------------------- one quantity twice
def test_phases_that_do_not_add_up_to_the_energy_are_an_error():
    df = good().assign(prefill_energy_j=[5.0, 10.0, 20.0], decode_energy_j=[15.0, 25.0, 60.0])
    read_profiles(df)  # they add up
    read_profiles(df.assign(decode_energy_j=[15.0, 25.0, 63.0]))  # 3.75%: a rounding
    with pytest.raises(SchemaError) as exc:
        read_profiles(df.assign(prefill_energy_j=df.prefill_energy_j * 0.8,
                                decode_energy_j=df.decode_energy_j * 0.8))
    p = exc.value.problems[0]
    assert p["code"] == "inconsistent_energy" and p["count"] == 3
    assert "prefill_energy_j + decode_energy_j" in p["rule"] and "same unit" in p["detail"]


def test_a_run_total_that_disagrees_with_the_energy_per_request_is_an_error():
    df = good().assign(n_requests=[100.0, 100.0, 100.0], run_energy_j=[2000.0, 3500.0, 8000.0])
    read_profiles(df)
    with pytest.raises(SchemaError, match=r"run_energy_j / n_requests.*row 2"):
        read_profiles(df.assign(run_energy_j=[2000.0, 3500.0, 8e7]))
    derived = read_profiles(df.drop(columns="energy_j"))  # derived from them: nothing to compare
    assert derived.energy_j.tolist() == [20.0, 35.0, 80.0]


def test_a_given_gpu_count_must_match_the_layout():
    ok = read_profiles(good().assign(n_gpus=[1, 2, 4], tp=[1, 2, 4]))
    assert ok.n_gpus.tolist() == [1, 2, 4]
    with pytest.raises(SchemaError) as exc:
        read_profiles(good().assign(tp=[1, 2, 4], GPUs=8), columns={"GPUs": "n_gpus"})
    p = exc.value.problems[0]
    assert p["column"] == "n_gpus" and p["code"] == "inconsistent_layout" and p["count"] == 3


def test_expert_parallel_degree_beyond_the_layout_is_an_error():
    read_profiles(good().assign(tp=1, dp=8, ep=8))
    with pytest.raises(SchemaError, match=r"'ep': must not exceed tp \* pp \* dp") as exc:
        read_profiles(good().assign(tp=1, dp=1, ep=8))
    assert exc.value.problems[0]["count"] == 3


def test_a_quoted_thousands_separator_is_not_called_a_decimal_comma():
    with pytest.raises(SchemaError) as exc:
        read_profiles(good().assign(input_tokens=["1,024", "512", "2,048"]))
    assert "thousands separator" in str(exc.value) and "write 1024" in str(exc.value)
    with pytest.raises(SchemaError, match="decimal comma: write 1.5"):
        read_profiles(good().assign(energy_j=["20,5", "40", "80"]))
