"""Plots: each takes ax=None, returns the Axes, labels carry words and units, nothing is shown,
and the caller's backend and pyplot are left alone when given a Figure's axes."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import energylens.plot as elp
from energylens import EnergyLensModel, SweetSpotModel

from .test_models import make_table


def _axes(figsize=(6.0, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer for the extent checks; pyplot stays out of it
    return fig.subplots()


def _sweep(so=(16, 64, 256, 1024)):
    si, so = np.meshgrid([64, 256, 1024, 4096], list(so))
    df = pd.DataFrame({"input_tokens": si.ravel().astype(float), "output_tokens": so.ravel().astype(float)})
    e = (2e-7 * df.input_tokens**2 + 1e-3 * df.input_tokens + 0.5) / df.output_tokens \
        + 1e-5 * df.input_tokens + 2e-5 * df.output_tokens + 0.1
    df["energy_j"] = e * df.output_tokens
    df["energy_per_output_token_j"] = e
    return df


@pytest.fixture(scope="module")
def sweet():
    df = _sweep()
    return df, SweetSpotModel().fit(df, df["energy_j"])


@pytest.fixture(scope="module")
def fitted():
    df = make_table(n=120, seed=70)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df, EnergyLensModel().fit(df)


def _units(ax):
    return ax.get_xlabel() + " " + ax.get_ylabel()


def test_public_namespace_is_the_plots_only():
    public = {n for n in dir(elp) if not n.startswith("_")}
    assert public == set(elp.__all__)
    assert not {"np", "pd", "Literal", "Sequence", "annotations"} & public


def test_sweetspot_curves_mark_the_optimum_and_the_measured_points(sweet):
    df, m = sweet
    ax = elp.sweetspot_curves(m, input_tokens=[64, 1024], data=df, ax=_axes())
    solid = ax.get_lines()[:2]
    opt = float(m.optimal_output_tokens(64))
    markers = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert any(ln.get_xdata()[0] == pytest.approx(opt) for ln in markers)
    assert len(ax.collections) == 2  # the measured points of both curves
    lo, hi = m.domain_.ranges["so"]
    for ln in solid:  # solid only over the measured output lengths
        x, y = ln.get_xdata(), np.asarray(ln.get_ydata(), float)
        assert np.nanmin(x[np.isfinite(y)]) >= lo * (1 - 1e-9)
        assert np.nanmax(x[np.isfinite(y)]) <= hi * (1 + 1e-9)
    assert "J/token" in _units(ax) and "tokens" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.xaxis.get_ticklabels()]
    assert "64" in labels and not any("^" in t for t in labels)
    ax2 = elp.sweetspot_curves(m, metric="tokens_per_joule", ax=_axes())
    assert "tokens/J" in ax2.get_ylabel()
    with pytest.raises(ValueError, match="metric"):
        elp.sweetspot_curves(m, metric="watts")


def test_optimum_outside_the_data_is_drawn_as_an_extrapolation():
    """Fitted on outputs up to 256 only, the optimum lies beyond: the curve goes on dashed
    to it and the marker is a hollow ring."""
    df = _sweep(so=(16, 32, 64, 128, 256))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = SweetSpotModel().fit(df, df["energy_j"])
        opt = float(m.optimal_output_tokens(4096))
    hi = m.domain_.ranges["so"][1]
    assert opt > hi
    ax = elp.sweetspot_curves(m, input_tokens=[4096], data=df, ax=_axes())
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert dashed and np.nanmax(np.asarray(dashed[0].get_xdata())[
        np.isfinite(np.asarray(dashed[0].get_ydata(), float))]) >= opt
    ring = [ln for ln in ax.get_lines() if ln.get_marker() == "o"
            and ln.get_xdata()[0] == pytest.approx(opt)]
    assert ring and ring[0].get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0))
    assert any("extrapolated" in t.get_text() for t in ax.get_legend().get_texts())


def test_sweetspot_curves_sort_a_given_grid_and_meet_at_the_measured_ends(sweet):
    """A grid given out of order zigzagged; the part beyond the measured range could be a
    single point, which draws nothing."""
    df, m = sweet
    lo, hi = m.domain_.ranges["so"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the lengths beyond the measured ones extrapolate
        ax = elp.sweetspot_curves(m, input_tokens=[512], output_tokens=[4096, 10, 256, 64],
                                  ax=_axes())
    solid, dashed = ax.get_lines()[:2]
    x = np.asarray(solid.get_xdata(), float)
    assert np.all(np.diff(x) > 0) and lo in x and hi in x
    ys, yd = np.asarray(solid.get_ydata(), float), np.asarray(dashed.get_ydata(), float)
    assert x[np.isfinite(ys)].min() == lo and x[np.isfinite(ys)].max() == hi
    above = x >= hi
    assert x[above].tolist() == [hi, 4096.0] and np.all(np.isfinite(yd[above]))
    below = x <= lo
    assert x[below].tolist() == [10.0, lo] and np.all(np.isfinite(yd[below]))


def test_sweetspot_plots_name_an_odd_argument(sweet):
    df, m = sweet
    with pytest.raises(ValueError, match=r"sweetspot_curves: input_tokens must hold one or more "
                                         r"lengths.*it is empty"):
        elp.sweetspot_curves(m, input_tokens=[], ax=_axes())
    with pytest.raises(ValueError, match=r"output_tokens must hold .* > 0"):
        elp.sweetspot_curves(m, input_tokens=[64], output_tokens=[16, -4], ax=_axes())
    with pytest.raises(ValueError, match=r"sweetspot_heatmap: input_grid must hold .*it is empty"):
        elp.sweetspot_heatmap(m, [], [], ax=_axes())
    with pytest.raises(ValueError, match=r"sweetspot_heatmap: output_grid must hold"):
        elp.sweetspot_heatmap(m, [64.0], [], ax=_axes())
    with pytest.raises(ValueError, match=r"data needs the column\(s\) \['energy_per_output_token_j "
                                         r"\(or energy_j\)'\]"):
        elp.sweetspot_curves(m, data=df[["input_tokens", "output_tokens"]], ax=_axes())


def test_sweetspot_curves_take_a_sweep_with_energy_per_request_only(sweet):
    df, m = sweet
    ax = elp.sweetspot_curves(m, input_tokens=[64], data=df.drop(columns="energy_per_output_token_j"),
                              ax=_axes())
    ref = elp.sweetspot_curves(m, input_tokens=[64], data=df, ax=_axes())
    np.testing.assert_allclose(ax.collections[0].get_offsets(), ref.collections[0].get_offsets())


def test_sweetspot_plots_refuse_other_models_with_a_type_error(fitted):
    """An EnergyLensModel or a HierarchicalEnergyModel has no closed-form optimum of the
    output length: a TypeError that says what is needed, not an AttributeError."""
    from energylens import HierarchicalEnergyModel

    df, m = fitted
    for model in (m, HierarchicalEnergyModel()):
        name = type(model).__name__
        with pytest.raises(TypeError, match=rf"sweetspot_curves needs a fitted SweetSpotModel.*got {name}"):
            elp.sweetspot_curves(model, data=df, ax=_axes())
        with pytest.raises(TypeError, match=rf"sweetspot_heatmap needs a fitted SweetSpotModel.*got {name}"):
            elp.sweetspot_heatmap(model, ax=_axes())


def test_heatmap_has_no_legend_over_the_stars(sweet):
    _, m = sweet
    ax = _axes()
    out = elp.sweetspot_heatmap(m, ax=ax)
    assert out is ax and "tokens" in ax.get_ylabel() and ax.get_legend() is None
    assert "stars" in ax.get_title()


def test_parity_band_and_mape(fitted):
    df, m = fitted
    ax = elp.parity(df.energy_j, m.predict(df), hue=df.tp, ax=_axes())
    assert "(J)" in ax.get_xlabel() and "MAPE" in ax.get_title()
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="shape"):
        elp.parity([1, 2], [1])


def _results(seeds=4):
    return pd.DataFrame([{"model": m, "n_train": n, "seed": s, "metric": "mape", "value": v}
                         for m, base in (("a", 10), ("b", 20)) for n in (10, 20, 50)
                         for s in range(seeds) for v in [base / n * (1 + 0.1 * s)]])


def test_sample_efficiency_ticks_legend_and_honest_bands():
    ax = elp.sample_efficiency(_results(), metric="mape", ax=_axes())
    assert len(ax.get_lines()) == 2 and "MAPE" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.xaxis.get_ticklabels()]
    assert labels == ["10", "20", "50"]  # plain numbers, not 2x10^1
    assert "range" in ax.get_title() and "4 seeds" in ax.get_title()
    ax5 = elp.sample_efficiency(_results(seeds=5), metric="mape", ax=_axes())
    assert "interquartile" in ax5.get_title() and "5 seeds" in ax5.get_title()
    # the legend sits beside the axes, not over the lines
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1 - 1
    with pytest.raises(ValueError, match="No rows"):
        elp.sample_efficiency(_results(), metric="top1")


def test_pareto_front_choice_limit_and_words():
    t = pd.DataFrame({"latency_s": [1, 2, 3, 2.5, 4], "energy_j": [10, 6, 5, 8, 5.5]})
    ax = elp.pareto(t, chosen=1, limit=2.5, ax=_axes())
    front = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(front))) == [(1, 10), (2, 6), (3, 5)]
    assert ax.get_xlabel() == "latency per request (s)"
    assert ax.get_ylabel() == "energy per request (J)"
    assert any("latency limit 2.5 s" in x.get_text() for x in ax.get_legend().get_texts())
    # a limit on the time per output token is called what it is
    tpot = elp.pareto(t.rename(columns={"latency_s": "tpot_s"}), x="tpot_s", limit=2.5, ax=_axes())
    assert any("TPOT limit 2.5 s" in x.get_text() for x in tpot.get_legend().get_texts())


def test_pareto_says_which_column_it_needs_and_how_to_get_it():
    ranked = pd.DataFrame({"rank": [1, 2], "energy_j": [5.0, 6.0], "tpot_s": [0.02, 0.01]})
    with pytest.raises(ValueError, match=r"x='latency_s', a column the table lacks.*"
                                         r"The table has \['tpot_s'\]: pass x='tpot_s'"):
        elp.pareto(ranked, ax=_axes())
    with pytest.raises(ValueError, match=r"latency_model=energylens.LatencyModel\("
                                         r"target='latency_s'\)"):
        elp.pareto(ranked.drop(columns="tpot_s"), ax=_axes())
    with pytest.raises(ValueError, match=r"y='energy_j'"):
        elp.pareto(ranked.drop(columns="energy_j"), x="tpot_s", ax=_axes())


def test_pareto_with_repeated_index_labels():
    t = pd.DataFrame({"latency_s": [1, 2, 3, 2.5], "energy_j": [10, 6, 5, 8]}, index=[0, 1, 1, 2])
    ax = elp.pareto(t, ax=_axes())
    front = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(front))) == [(1, 10), (2, 6), (3, 5)]
    ax = elp.pareto(t, chosen=2, ax=_axes())
    assert tuple(np.asarray(ax.collections[-1].get_offsets())[0]) == (2.5, 8)
    with pytest.raises(ValueError, match="chosen=1 labels several rows"):
        elp.pareto(t, chosen=1, ax=_axes())
    with pytest.raises(ValueError, match="chosen=7 is not a row label"):
        elp.pareto(t, chosen=7, ax=_axes())
    with pytest.raises(ValueError, match="labels repeat"):
        elp.pareto(t, front=pd.Series([True] * 4, index=t.index), ax=_axes())


def test_pareto_star_says_whether_the_chosen_row_meets_the_limit():
    t = pd.DataFrame({"latency_s": [1, 2, 3], "energy_j": [10, 6, 5]})

    def star(chosen):
        ax = elp.pareto(t, chosen=chosen, limit=2.5, ax=_axes())
        return [x.get_text() for x in ax.get_legend().get_texts()][-1]

    assert star(1) == "least energy within the limit"
    assert star(2) == "chosen (beyond the limit)"
    assert elp.pareto(t, chosen=2, ax=_axes()).get_legend().get_texts()[-1].get_text() == "chosen"


def test_parity_refuses_energies_a_log_axis_cannot_draw():
    with pytest.raises(ValueError, match=r"y_true has 1 that are not \(positions \[1\]: \[0.0\]\)"):
        elp.parity([1.0, 0.0, 2.0], [1.0, 1.0, 2.0], ax=_axes())
    with pytest.raises(ValueError, match=r"y_pred has 1 that are not .*nan"):
        elp.parity([1.0, 2.0], [1.0, np.nan], ax=_axes())
    with pytest.raises(ValueError, match="empty"):
        elp.parity([], [], ax=_axes())


def test_a_failed_plot_leaves_no_figure_open(fitted):
    import matplotlib.pyplot as plt

    df, m = fitted
    t = pd.DataFrame({"energy_j": [5.0, 6.0]})
    before = plt.get_fignums()
    calls = [(elp.pareto, (t,), {}), (elp.parity, ([0.0, 1.0], [1.0, 1.0]), {}),
             (elp.sample_efficiency, (_results(),), {"metric": "top1"}),
             (elp.components, (object(), df.head(3)), {}),  # fails after its figure is made
             (elp.extrapolation, (df, df.drop(columns="energy_j"), m), {}),
             (elp.sweetspot_curves, (m,), {})]
    for fn, args, kwargs in calls:
        with pytest.raises((ValueError, TypeError, AttributeError)):
            fn(*args, **kwargs)
        assert plt.get_fignums() == before, fn.__name__
    ax = elp.parity([1.0, 2.0], [1.1, 1.9])  # a call that works keeps its figure
    assert plt.get_fignums() == [*before, ax.figure.number]
    plt.close(ax.figure)


def test_pareto_front_from_pareto_front_is_aligned_by_label():
    """pareto_front returns rows sorted by latency; the plot must match them by label."""
    from energylens import pareto_front

    t = pd.DataFrame({"latency_s": [4, 1, 3, 2.5, 2], "energy_j": [5.5, 10, 5, 8, 6]},
                     index=[10, 11, 12, 13, 14])
    pf = pareto_front(t)
    assert list(pf.index) != list(t.index)  # the order differs, so position would be wrong
    ax = elp.pareto(t, front=pf["pareto"], chosen=12, ax=_axes())
    front = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(front))) == [(1, 10), (2, 6), (3, 5)]
    with pytest.raises(ValueError, match="front has 2 entries"):
        elp.pareto(t, front=[True, False])


def test_discovery_front_label_stays_inside_the_axes():
    eq = pd.DataFrame({"complexity": [1, 3, 6], "loss": [1.0, 0.1, 0.05],
                       "equation": ["a", "b", "0.000769*p*so*t + 7.278e-6*si*so + 0.00357*si + "
                                              "0.2544*so*(p - 1)/B + 0.06477*so*(t - 1)/B"]})
    ax = elp.discovery_front(eq, selected=2, ax=_axes())
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    for text in ax.texts:
        bb = text.get_window_extent(renderer)
        assert box.x0 <= bb.x0 and bb.x1 <= box.x1 and box.y0 <= bb.y0 and bb.y1 <= box.y1


def test_discovery_front_takes_the_result_of_discover_or_its_table():
    from energylens.discovery import TermSearch, discover

    from .test_discovery import planted

    res = discover(planted("tp_overhead", n=120), engine=TermSearch(max_terms=4))
    ax = elp.discovery_front(res, ax=_axes())
    (front, star) = ax.get_lines()[:2]
    np.testing.assert_allclose(front.get_xdata(), res.equations_["complexity"])
    best = res.equations_.iloc[res.best_index_]
    assert star.get_xdata()[0] == best["complexity"] and star.get_ydata()[0] == best["loss"]
    text = res.equation(digits=4)  # to four significant digits, cut as for a table's text
    assert ax.texts[0].get_text() == (text if len(text) <= 48 else text[:45] + "...")
    assert "relative" in ax.get_ylabel()
    ax = elp.discovery_front(res, selected=0, ax=_axes())  # another row than the result's
    assert ax.get_lines()[1].get_xdata()[0] == res.equations_["complexity"].iloc[0]
    ax = elp.discovery_front(res.equations_, selected=res.best_index_, ax=_axes())  # the table
    assert ax.get_lines()[1].get_xdata()[0] == best["complexity"]
    with pytest.raises(TypeError, match="DiscoveryResult returned by discover"):
        elp.discovery_front([1, 2, 3], ax=_axes())


def test_discovery_front_draws_an_exact_fit_at_a_floor():
    """discover()'s own docstring example selects a formula of loss 0: its star sat at y=0
    on the log axis and neither it nor its label was drawn."""
    eq = pd.DataFrame({"complexity": [1, 2, 3], "loss": [0.2, 0.04, 0.0],
                       "equation": ["9.9", "0.02*si", "0.01*si + 0.5*so/B"]})
    ax = elp.discovery_front(eq, selected=2, ax=_axes())
    front, star = ax.get_lines()[:2]
    floor = star.get_ydata()[0]
    assert 0 < floor < 0.04 and front.get_ydata()[2] == floor
    lo, hi = ax.get_ylim()
    assert lo < floor < hi
    assert "exact fit" in ax.texts[0].get_text()
    assert any("exact fit (loss 0)" in t.get_text() for t in ax.get_legend().get_texts())
    renderer = ax.figure.canvas.get_renderer()
    assert ax.texts[0].get_window_extent(renderer).width > 1
    ax = elp.discovery_front(eq.assign(loss=0.0), selected=0, ax=_axes())
    assert np.all(np.isfinite(ax.get_lines()[0].get_ydata()))
    assert np.all(np.asarray(ax.get_lines()[0].get_ydata()) > 0)


def test_components_and_extrapolation(fitted):
    df, m = fitted
    ax = elp.components(m, df.head(6), ax=_axes())
    assert len(ax.patches) == 18 and "(J)" in ax.get_ylabel()
    small, big = df[df.batch_size <= 16], df[df.batch_size > 16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = EnergyLensModel().fit(small)
        ax = elp.extrapolation(small, big, m2, ax=_axes())
    assert ax.get_xlabel() == "batch size (requests)"


def test_plots_on_a_figure_leave_pyplot_and_the_backend_alone():
    code = """
import sys, warnings
import matplotlib
def refuse(*args, **kwargs):
    raise AssertionError("matplotlib.use was called")
matplotlib.use = refuse
from matplotlib.figure import Figure
import pandas as pd
import energylens.plot as elp
ax = Figure().subplots()
elp.pareto(pd.DataFrame({"latency_s": [1, 2], "energy_j": [2, 1]}), ax=ax)
elp.sample_efficiency(pd.DataFrame({"model": ["a"] * 2, "n_train": [10, 20], "seed": [0, 0],
                                    "metric": ["mape"] * 2, "value": [5.0, 3.0]}), ax=ax)
ax.figure.savefig(__import__("io").BytesIO(), format="png")
print("matplotlib.pyplot" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False"]
