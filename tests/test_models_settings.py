"""Constructor settings of the closed forms: what a fit keeps of them, which values are
refused, and the intervals and warnings that come out of a fitted model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import energylens
from energylens.exceptions import EnergyLensWarning, ExtrapolationWarning
from energylens.models import EnergyLensModel, ExpressionModel, LatencyModel, energylens_kernel
from energylens.models.ensemble import RandomForestEnergyModel

from .test_models import THETA, make_table, quiet_fit


@pytest.fixture(scope="module")
def table():
    return make_table(n=150, seed=70)


def _sized(table):
    return table.assign(params_b=8.0)


# --------------------------------------------------------------------------- set_params after fit
def test_set_params_after_fit_changes_the_next_fit_not_the_fitted_model(table):
    m = quiet_fit(EnergyLensModel(), _sized(table))
    pred, report = m.predict(_sized(table)), m.fit_report()
    pi = m.predict_interval(_sized(table))
    m.set_params(size_covariate="params_b", loss="absolute", fixed={"c5": 1.0},
                 bounds={"c1": (0.0, 1e-3)})
    np.testing.assert_array_equal(m.predict(_sized(table)), pred)
    pd.testing.assert_frame_equal(m.predict_interval(_sized(table)), pi)
    assert m.fit_report() == report and m.fit_stats_["loss"] == "relative"
    assert not m.params_.loc["c5", "fixed"] and m.params_.loc["c1", "upper"] == np.inf
    assert m.fitted_params_["size_covariate"] is None
    quiet_fit(m, _sized(table))  # the next fit uses the new settings
    assert m.fitted_params_["size_covariate"] == "params_b" and m.fit_stats_["loss"] == "absolute"
    assert m.params_.loc["c5", "value"] == 1.0 and m.params_.loc["c5", "note"] == "fixed by the user"


def test_a_model_saved_after_set_params_is_the_fitted_one(table, tmp_path):
    m = quiet_fit(EnergyLensModel(), table)
    m.set_params(bounds={"c1": (0.0, 1e-9)}, fixed={"c5": 1.0})
    back = energylens.load_model(m.save(tmp_path / "m.json"))
    assert back.get_params()["fixed"] is None and back.get_params()["bounds"] is None
    np.testing.assert_array_equal(back.predict(table), m.predict(table))
    assert not back.params_.loc["c5", "fixed"]


def test_set_params_of_other_forms_after_fit(table):
    lat = quiet_fit(LatencyModel(target="tpot_s"), table.assign(tpot_s=0.02 + 1e-4 * table.batch_size))
    before = lat.predict(table)
    lat.set_params(target="ttft_s")
    np.testing.assert_array_equal(lat.predict(table), before)
    assert list(lat.params_.index) == ["a5", "a6", "a7", "a8", "a9"]
    expr = quiet_fit(ExpressionModel(expression="a0*si + a1*so"), table)
    before = expr.predict(table)
    expr.set_params(expression="a0*so")
    np.testing.assert_array_equal(expr.predict(table), before)
    assert expr.formula == "E = a0*si + a1*so" and clone(expr).formula == "E = a0*so"


def test_set_params_of_an_ensemble_after_fit(table):
    rf = RandomForestEnergyModel(n_estimators=5).fit(table)
    before = rf.predict(table)
    rf.set_params(log_target=False)
    np.testing.assert_array_equal(rf.predict(table), before)


def test_a_failed_refit_keeps_the_settings_of_the_last_fit(table):
    m = quiet_fit(EnergyLensModel(), table)
    m.set_params(size_covariate="params_b")
    with pytest.raises(ValueError, match="params_b"):
        m.fit(table)  # no params_b column
    assert m.fitted_params_["size_covariate"] is None
    assert np.all(np.isfinite(m.predict(table)))


# --------------------------------------------------------------------------- fixed values
@pytest.mark.parametrize("fixed, message", [
    ({"c3": -5.0}, r"c3 = -5.0 outside the bounds \[0, 10\] of c3"),
    ({"c8": 50}, r"c8 = 50 outside the bounds \[0, 10\] of c8"),
    ({"c3": float("nan")}, r"finite numbers; got c3: nan"),
    ({"c1": float("inf")}, r"finite numbers; got c1: inf"),
    ({"c1": "0.1"}, r"finite numbers; got c1: '0.1'"),
])
def test_a_fixed_value_outside_its_bounds_or_not_finite_is_an_error(table, fixed, message):
    with pytest.raises(ValueError, match=message):
        EnergyLensModel(fixed=fixed).fit(table)


def test_a_fixed_value_within_widened_bounds_is_kept(table):
    m = quiet_fit(EnergyLensModel(fixed={"c3": 20.0}, bounds={"c3": (0.0, 30.0)}), table)
    assert m.params_.loc["c3", "value"] == 20.0
    with pytest.raises(ValueError, match=r"c3 = 20.0 outside the bounds \[0, 5\]"):
        EnergyLensModel(fixed={"c3": 20.0}, bounds={"c3": (0.0, 5.0)}).fit(table)
    with pytest.raises(ValueError, match="lower <= upper"):
        EnergyLensModel(bounds={"c3": (0.0, float("nan"))}).fit(table)


# --------------------------------------------------------------------------- intervals
def _one_prompt_length(seed=0):
    """Eight rows of one layout and one prompt length: the prefill terms are barely
    determined, so the interval at another prompt length spans orders of magnitude."""
    B = np.array([64, 128, 192, 256, 320, 512, 768, 1024.0])
    so = np.array([461, 462, 459, 458, 459, 452, 454, 456.0])
    df = pd.DataFrame({"model": "m", "gpu": "g", "tp": 4, "pp": 1, "batch_size": B,
                       "input_tokens": 256.0, "output_tokens": so})
    V = {"t": np.full(8, 4.0), "p": np.ones(8), "B": B, "si": np.full(8, 256.0), "so": so}
    df["energy_j"] = energylens_kernel(V, THETA) * np.exp(np.random.default_rng(seed).normal(0, 0.03, 8))
    return df


def test_an_interval_spanning_orders_of_magnitude_is_flagged_without_numpy_warnings():
    df = _one_prompt_length()
    m = quiet_fit(EnergyLensModel(), df)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pi = m.predict_interval(pd.concat([df.head(1), df.head(1).assign(input_tokens=512.0)]))
    assert not [w for w in caught if not issubclass(w.category, EnergyLensWarning)]
    assert pi["wide"].tolist() == [False, True]
    assert pi["upper"].iloc[1] > 10 * pi["lower"].iloc[1]
    assert any("spanning more than a factor of 10" in str(w.message) and "'wide'" in str(w.message)
               for w in caught)


def test_an_interval_inside_the_data_is_not_wide(table):
    m = quiet_fit(EnergyLensModel(), table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pi = m.predict_interval(table)
    assert not pi["wide"].any()


def test_extrapolation_warnings_point_at_the_callers_line(table):
    m = quiet_fit(EnergyLensModel(), table)
    far = table.head(2).assign(tp=64)
    for call in (m.predict, m.predict_interval, m.predict_components):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(far)
        ext = [w for w in caught if issubclass(w.category, ExtrapolationWarning)]
        assert len(ext) == 1 and ext[0].filename == __file__, (call.__name__, ext[0].filename)
