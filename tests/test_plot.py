"""Plots: each takes ax=None, returns the Axes, labels carry units, nothing is shown."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import energylens.plot as elp  # noqa: E402
from energylens import EnergyLensModel, SweetSpotModel  # noqa: E402

from .test_models import make_table  # noqa: E402


@pytest.fixture(scope="module")
def sweet():
    si, so = np.meshgrid([64, 256, 1024, 4096], [16, 64, 256, 1024])
    df = pd.DataFrame({"input_tokens": si.ravel().astype(float), "output_tokens": so.ravel().astype(float)})
    e = (2e-7 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \
        + 1e-5 * df.input_tokens + 2e-5 * df.output_tokens + 0.1
    return SweetSpotModel().fit(df, e * df.output_tokens)


@pytest.fixture(scope="module")
def fitted():
    df = make_table(n=120, seed=70)
    return df, EnergyLensModel().fit(df)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _units(ax):
    return ax.get_xlabel() + " " + ax.get_ylabel()


def test_sweetspot_curves_mark_the_optimum(sweet):
    ax = elp.sweetspot_curves(sweet, input_tokens=[64, 1024])
    assert len(ax.get_lines()) == 4  # two curves, two optimum markers
    opt_x = ax.get_lines()[1].get_xdata()[0]
    assert opt_x == pytest.approx(float(sweet.optimal_output_tokens(64)))
    assert "J/token" in _units(ax) and "tokens" in ax.get_xlabel()
    ax2 = elp.sweetspot_curves(sweet, metric="tokens_per_joule")
    assert "tokens/J" in ax2.get_ylabel()
    with pytest.raises(ValueError, match="metric"):
        elp.sweetspot_curves(sweet, metric="watts")


def test_heatmap_and_given_axes(sweet):
    fig, ax = plt.subplots()
    out = elp.sweetspot_heatmap(sweet, ax=ax)
    assert out is ax and "tokens" in ax.get_ylabel()


def test_parity_band_and_mape(fitted):
    df, m = fitted
    ax = elp.parity(df.energy_j, m.predict(df), hue=df.tp)
    assert "(J)" in ax.get_xlabel() and "MAPE" in ax.get_title()
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="shape"):
        elp.parity([1, 2], [1])


def test_sample_efficiency_bands():
    rows = [{"model": m, "n_train": n, "seed": s, "metric": "mape", "value": v}
            for m, base in (("a", 10), ("b", 20)) for n in (10, 20, 50) for s in range(4)
            for v in [base / n * (1 + 0.1 * s)]]
    ax = elp.sample_efficiency(pd.DataFrame(rows), metric="mape")
    assert len(ax.get_lines()) == 2 and "MAPE (%)" in ax.get_ylabel()
    with pytest.raises(ValueError, match="No rows"):
        elp.sample_efficiency(pd.DataFrame(rows), metric="top1")


def test_pareto_front_and_choice():
    t = pd.DataFrame({"latency_s": [1, 2, 3, 2.5, 4], "energy_j": [10, 6, 5, 8, 5.5]})
    ax = elp.pareto(t, chosen=2)
    front = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(front))) == [(1, 10), (2, 6), (3, 5)]
    assert "(s)" in ax.get_xlabel() and "(J)" in ax.get_ylabel()


def test_pareto_front_from_pareto_front_is_aligned_by_label():
    """pareto_front returns rows sorted by latency; the plot must match them by label."""
    from energylens import pareto_front

    t = pd.DataFrame({"latency_s": [4, 1, 3, 2.5, 2], "energy_j": [5.5, 10, 5, 8, 6]},
                     index=[10, 11, 12, 13, 14])
    pf = pareto_front(t)
    assert list(pf.index) != list(t.index)  # the order differs, so position would be wrong
    ax = elp.pareto(t, front=pf["pareto"], chosen=12)
    front = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(front))) == [(1, 10), (2, 6), (3, 5)]
    with pytest.raises(ValueError, match="front has 2 entries"):
        elp.pareto(t, front=[True, False])


def test_discovery_front_components_extrapolation(fitted):
    eq = pd.DataFrame({"complexity": [1, 3, 5], "loss": [1.0, 0.1, 0.05], "equation": ["a", "b", "c"]})
    ax = elp.discovery_front(eq, selected=1)
    assert "complexity" in ax.get_xlabel()
    df, m = fitted
    ax = elp.components(m, df.head(6))
    assert len(ax.patches) == 18 and "(J)" in ax.get_ylabel()
    small, big = df[df.batch_size <= 16], df[df.batch_size > 16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = EnergyLensModel().fit(small)
    ax = elp.extrapolation(small, big, m2)
    assert "requests" in ax.get_xlabel()
