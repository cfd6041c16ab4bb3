"""SweetSpotModel's optimum: what kind it is (determined, not determined, none because longer
or shorter is better), its interval and the efficiency there, the same in the model, the
command line and the report."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens import SweetSpotModel
from energylens.cli import main
from energylens.exceptions import EnergyLensWarning, ExtrapolationWarning

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_profiles.csv"


def _fit(df, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SweetSpotModel().fit(df, y)


def _grid(si=(64.0, 256, 1024, 4096), so=(16.0, 64, 256, 1024)):
    a, b = np.meshgrid(si, so)
    return pd.DataFrame({"input_tokens": a.ravel(), "output_tokens": b.ravel()})


@pytest.fixture(scope="module")
def demo():
    return energylens.read_profiles(DEMO)


def _sweep(demo, model, gpu):
    return demo[(demo.model == model) & (demo.gpu == gpu) & (demo.workload == "sweep")]


def test_a_peak_the_data_do_not_pin_down_is_its_point_estimate_flagged(demo):
    """Llama-3.1-70B on H100: the fitted curve peaks near 1,600 output tokens at a 512-token
    prompt (efficiency at a million tokens is far lower), but t4 is within two standard errors
    of zero. That is 'not determined', with the estimate and an interval, not 'longer is
    always better' (it was inf)."""
    m = _fit(_sweep(demo, "Llama-3.1-70B", "H100-SXM"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = float(m.optimal_output_tokens(512.0))
    said = [(w.category, str(w.message)) for w in caught]
    assert any(c is EnergyLensWarning and "not determined by the data" in t for c, t in said)
    assert any(c is ExtrapolationWarning for c, _ in said)
    assert 1500 < opt < 4000
    row = m.optimum([512.0]).iloc[0]
    assert row["status"] == "not determined" and row["optimal_output_tokens"] == opt
    assert row["optimal_output_lower"] < opt <= row["optimal_output_upper"]
    peak = float(m.efficiency_surface([512.0], [opt]).iloc[0, 0])
    assert row["tokens_per_joule_at_optimum"] == pytest.approx(peak)
    far = float(m.efficiency_surface([512.0], [1e6]).iloc[0, 0])
    assert peak > 10 * far
    assert row["extrapolated"] and "outside the output lengths fitted (16 to 1024)" in row["note"]


def test_a_determined_optimum_has_a_bounded_interval_around_it(demo):
    m = _fit(_sweep(demo, "Llama-3.1-8B", "A100-80GB"))
    t = m.optimum([16.0, 512.0], level=0.9)
    assert (t["status"] == "optimum").all()
    assert (t["optimal_output_lower"] < t["optimal_output_tokens"]).all()
    assert (t["optimal_output_tokens"] < t["optimal_output_upper"]).all()
    assert np.isfinite(t["optimal_output_upper"]).all()
    wide = m.optimum([512.0], level=0.99).iloc[0]
    assert wide["optimal_output_lower"] < t["optimal_output_lower"].iloc[1]
    assert wide["optimal_output_upper"] > t["optimal_output_upper"].iloc[1]
    with pytest.raises(ValueError, match="level"):
        m.optimum([512.0], level=1.0)
    # -500 and 0 gave an "optimum" at 158 tokens, NaN "shorter is better"
    for bad in ([-500.0], [512.0, 0.0], [np.nan]):
        with pytest.raises(ValueError, match=r"SweetSpotModel.optimum: input lengths must be "
                                             r"finite and > 0"):
            m.optimum(bad)
        with pytest.raises(ValueError, match="input lengths must be finite and > 0"):
            m.optimal_output_tokens(bad)


def test_an_exact_fit_has_its_optimum_as_its_interval():
    # no noise: the covariance is zero up to rounding, the interval the point (it was 0 to inf)
    si, so = np.meshgrid([64, 256, 1024, 4096], [16, 64, 256, 1024])
    df = pd.DataFrame({"input_tokens": si.ravel(), "output_tokens": so.ravel()})
    e = ((2e-6 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens
         + 1e-5 * df.input_tokens + 1e-3 * df.output_tokens + 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = SweetSpotModel().fit(df, e * df.output_tokens)
    t = m.optimum([64, 1024])
    assert (t["status"] == "optimum").all()
    truth = np.sqrt((2e-6 * np.array([64, 1024]) ** 2 + 1e-3 * np.array([64, 1024]) + 0.5) / 1e-3)
    np.testing.assert_allclose(t["optimal_output_tokens"], truth, rtol=1e-6)
    np.testing.assert_allclose(t["optimal_output_lower"], truth, rtol=1e-3)
    np.testing.assert_allclose(t["optimal_output_upper"], truth, rtol=1e-3)


def test_an_estimate_below_one_token_is_not_an_optimum():
    """No prefill cost to amortise: the fit puts the 'optimum' at a few thousandths of a
    token, which was returned as the optimum. Efficiency falls with every longer answer."""
    df = _grid()
    e = 1e-5 * df.input_tokens + 2e-4 * df.output_tokens + 0.1
    e = e * np.exp(np.random.default_rng(0).normal(0, 0.01, len(e)))
    m = _fit(df, e * df.output_tokens)
    with pytest.warns(EnergyLensWarning, match="no optimum of one token or more"):
        opt = m.optimal_output_tokens([64.0, 4096.0])
    assert np.isnan(opt).all()
    t = m.optimum([64.0])
    assert t["status"].tolist() == ["shorter is better"]
    assert np.isnan(t["tokens_per_joule_at_optimum"]).all()


def test_longer_is_better_gives_the_efficiency_it_approaches():
    """t4 at zero: no interior optimum; the efficiency shown is its limit as the answer
    grows, not the value at the largest measured output."""
    df = _grid(si=(64.0, 256, 1024))
    e = (1e-3 * df.input_tokens + 0.5) / df.output_tokens + 0.1
    e = e * np.exp(np.random.default_rng(0).normal(0, 0.01, len(e)))
    m = _fit(df, e * df.output_tokens)
    row = m.optimum([256.0]).iloc[0]
    assert row["status"] == "longer is better" and np.isinf(row["optimal_output_tokens"])
    limit = float(m.efficiency_surface([256.0], [1e12]).iloc[0, 0])
    at_largest = float(m.efficiency_surface([256.0], [1024.0]).iloc[0, 0])
    assert row["tokens_per_joule_at_optimum"] == pytest.approx(limit, rel=1e-4)
    assert row["tokens_per_joule_at_optimum"] > at_largest


def test_an_optimum_beyond_any_sensible_length_is_longer_is_better():
    df = _grid()
    e = (2e-6 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \
        + 1e-5 * df.input_tokens + 0.1
    m = _fit(df, e * df.output_tokens)
    m.coef_ = m.coef_.copy()
    m.coef_[4] = 1e-16  # an optimum of ~1e8 tokens
    row = m.optimum([1024.0]).iloc[0]
    assert row["status"] == "longer is better" and np.isinf(row["optimal_output_tokens"])


def test_command_line_and_report_say_the_same(demo, tmp_path, capsys):
    """The command's CSV gives the kind of optimum, and the efficiency at the optimum (not
    at the largest measured output); the report's sweet-spot table says the same."""
    from energylens.report import lengths

    part = _sweep(demo, "Llama-3.1-70B", "H100-SXM")
    table = tmp_path / "sweep.csv"
    part.to_csv(table, index=False)
    capsys.readouterr()
    assert main(["sweetspot", str(table), "--inputs", "512"]) == 0
    cap = capsys.readouterr()
    out = pd.read_csv(pd.io.common.StringIO(cap.out))
    row = out.iloc[0]
    assert row["status"] == "not determined"
    m = _fit(part)
    opt = row["optimal_output_tokens"]
    assert opt == pytest.approx(float(m.optimum([512.0])["optimal_output_tokens"].iloc[0]))
    assert row["tokens_per_joule_at_optimum"] == pytest.approx(
        float(m.efficiency_surface([512.0], [opt]).iloc[0, 0]))
    assert f"optimal output {opt:.4g} tokens" in cap.err and "not determined" in cap.err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits, t, _ = lengths.sweet_spots(part, show_progress=False)
    assert t["status"].tolist() == ["not determined"]
    assert t["optimal output (tokens)"].iloc[0] == pytest.approx(opt)
    assert "longer is always better" not in " ".join(t["optimum"])


def test_an_input_length_outside_those_fitted_is_an_extrapolated_optimum(demo):
    """The optimum at an input length never measured was 'an optimum the data determine',
    extrapolated=False."""
    m = _fit(_sweep(demo, "Llama-3.1-8B", "A100-80GB"))
    lo, hi = m._state_.domain.ranges["si"]
    t = m.optimum([lo, 8 * hi])
    assert not t["extrapolated"].iloc[0] and t["extrapolated"].iloc[1]
    assert f"input length outside those fitted ({lo:g} to {hi:g})" in t["note"].iloc[1]
    with pytest.warns(ExtrapolationWarning, match="input lengths"):
        m.efficiency_surface([hi, 8 * hi], [64.0])
    with pytest.warns(ExtrapolationWarning, match="optimum/optima extrapolate"):
        m.optimal_output_tokens([8 * hi])


def test_an_optimum_whose_interval_reaches_zero_is_not_determined():
    """t4 many standard errors clear of zero, but a prefill-and-static cost too small to
    measure: the interval of the optimum starts at zero, which the status called 'an optimum
    the data determine'."""
    df = _grid()
    e = 0.02 / df.output_tokens + 1e-5 * df.input_tokens + 2e-4 * df.output_tokens + 0.1
    noise = np.exp(np.random.default_rng(0).normal(0, 0.03, len(df)))
    m = _fit(df, e * df.output_tokens * noise)
    assert m.coef_[4] > 10 * np.sqrt(m._full_cov()[4, 4])
    r = m.optimum([64.0]).iloc[0]
    assert r["optimal_output_lower"] == 0.0 and np.isfinite(r["optimal_output_upper"])
    assert r["status"] == "not determined" and "reaches zero" in r["note"]


def test_per_token_warnings_point_at_the_callers_line(demo):
    m = _fit(_sweep(demo, "Llama-3.1-8B", "A100-80GB"))
    far = _grid(si=(64.0,), so=(1e5,))
    for method in (m.predict_per_token, m.efficiency):
        with pytest.warns(ExtrapolationWarning) as caught:
            method(far)
        assert {w.filename for w in caught} == {__file__}
