"""Accuracy plots: parity, sample efficiency, extrapolation."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ._base import axes, label, plain_ticks, plot_function

__all__ = ["parity", "sample_efficiency", "extrapolation"]

_METRIC_LABELS = {"mape": "MAPE on held-out rows (%)", "median_ape": "median APE (%)",
                  "top1": "Top-1 accuracy (fraction)", "regret": "regret (fraction)",
                  "pairwise": "pairwise accuracy (fraction)"}


@plot_function
def parity(y_true, y_pred, *, band: float = 0.10, hue=None, ax=None, label: str = "energy per request"):
    """Predicted against measured energy on log axes, with a +-``band`` relative band.

    Parameters
    ----------
    y_true, y_pred : array-like
        Measured and predicted energies (J).
    band : float, default=0.10
        Half-width of the shaded relative band (0.10 = +-10%).
    hue : array-like, optional
        Group label per point (one colour each).
    label : str
        What the energies are, for the axis labels.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = parity([1.0, 2.0, 4.0], [1.1, 1.9, 4.2])  # doctest: +SKIP
    """
    from ..core.metrics import mape

    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} and {y_pred.shape}.")
    if y_true.size == 0:
        raise ValueError("parity needs at least one energy; y_true and y_pred are empty.")
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise ValueError(
                f"parity draws energies on log axes, so each must be a finite number > 0; "
                f"{name} has {bad.size} that are not (positions {bad[:5].tolist()}: "
                f"{v[bad[:5]].tolist()}). Leave those rows out, e.g. y_true[mask], "
                "y_pred[mask] with mask = (y_true > 0) & (y_pred > 0).")
    ax = axes(ax, figsize=(5.0, 5.0))
    lo = min(y_true.min(), y_pred.min()) * 0.8
    hi = max(y_true.max(), y_pred.max()) * 1.25
    grid = np.geomspace(lo, hi, 50)
    ax.fill_between(grid, grid * (1 - band), grid * (1 + band), color="0.85",
                    label=f"+-{100 * band:g}%")
    ax.plot(grid, grid, color="0.4", lw=1)
    if hue is None:
        ax.scatter(y_true, y_pred, s=14, alpha=0.8)
    else:
        hue = np.asarray(hue)
        for h in pd.unique(hue):
            m = hue == h
            ax.scatter(y_true[m], y_pred[m], s=14, alpha=0.8, label=str(h))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured {label} (J)")
    ax.set_ylabel(f"predicted {label} (J)")
    ax.set_title(f"Parity: MAPE {mape(y_true, y_pred):.1f}%")
    ax.legend(fontsize="x-small", loc="upper left", ncols=2 if hue is not None and
              len(pd.unique(hue)) > 6 else 1)
    return ax


def _band(s, band: str):
    if band == "iqr":
        return s.median(), s.quantile(0.25), s.quantile(0.75), "median and interquartile range"
    if band == "range":
        return s.median(), s.min(), s.max(), "median and range (lowest to highest)"
    mid, sd = s.mean(), s.std().fillna(0)
    return mid, mid - sd, mid + sd, "mean +- one standard deviation"


@plot_function
def sample_efficiency(results: pd.DataFrame, *, metric: str = "mape",
                      band: Literal["auto", "iqr", "range", "sd"] = "auto", ax=None):
    """A metric against training-set size, one line per model, with a band over seeds.

    Parameters
    ----------
    results : DataFrame
        Long results (``model, n_train, seed, metric, value``) from
        :func:`energylens.evaluation.sample_efficiency`.
    metric : str
        Which metric to plot (e.g. ``"mape"``, ``"top1"``).
    band : {"auto", "iqr", "range", "sd"}
        Interquartile range, lowest-to-highest range, or mean +- one standard deviation over
        seeds; ``"auto"`` takes the interquartile range from five seeds on and the range
        below (a quartile of two or three values says little). The title says which, and
        over how many seeds.

    Returns
    -------
    matplotlib Axes
        Ticks at the training sizes, written plainly; the legend beside the axes.

    Examples
    --------
    >>> ax = sample_efficiency(results, metric="mape")  # doctest: +SKIP
    """
    if band not in ("auto", "iqr", "range", "sd"):
        raise ValueError(f"band must be 'auto', 'iqr', 'range' or 'sd'; got {band!r}.")
    sub = results[results["metric"] == metric]
    if sub.empty:
        raise ValueError(f"No rows with metric {metric!r}; metrics are {sorted(results['metric'].unique())}.")
    ax = axes(ax)
    n_seeds = int(sub["seed"].nunique())
    band = ("iqr" if n_seeds >= 5 else "range") if band == "auto" else band
    # Average within a seed first (over scenarios or datasets), then band over seeds.
    per_seed = sub.groupby(["model", "n_train", "seed"], as_index=False, sort=False)["value"].mean()
    what = ""
    for name in pd.unique(per_seed["model"]):
        g = per_seed[per_seed["model"] == name]
        s = g.groupby("n_train")["value"]
        x = np.asarray(sorted(g["n_train"].unique()), float)
        mid, lo, hi, what = _band(s, band)
        (line,) = ax.plot(x, mid.to_numpy(), marker="o", label=str(name))
        ax.fill_between(x, lo.to_numpy(), hi.to_numpy(), color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    plain_ticks(ax.xaxis, sub["n_train"].unique())
    ax.set_xlabel("training rows per group (n_train)")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.set_title(f"{what} over {n_seeds} seed{'s' * (n_seeds != 1)}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return ax


@plot_function
def extrapolation(train: pd.DataFrame, test: pd.DataFrame, model, *, x: str = "batch_size",
                  y: str = "energy_j", ax=None):
    """Measured and predicted energy against ``x`` for training rows and extrapolated rows.

    Examples
    --------
    >>> ax = extrapolation(small_batches, large_batches, model)  # doctest: +SKIP
    """
    for name, t in (("train", train), ("test", test)):
        missing = [c for c in (x, y) if c not in t.columns]
        if missing:
            raise ValueError(f"extrapolation: {name} lacks the columns {missing}.")
    ax = axes(ax)
    ax.scatter(train[x], train[y], s=16, color="C0", label="training (measured)")
    ax.scatter(test[x], test[y], s=16, color="C1", label="held out (measured)")
    ax.scatter(test[x], model.predict(test), s=30, marker="x", color="C3", label="held out (predicted)")
    if len(train):
        ax.axvline(float(np.max(train[x])), color="0.5", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title("Extrapolation beyond the training range")
    ax.legend(fontsize="small")
    return ax
