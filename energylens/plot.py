"""Plots for notebooks and reports.

Every function takes ``ax=None`` (a new figure is made when omitted), returns the
:class:`matplotlib.axes.Axes`, labels its axes with units, and never calls ``show()``.
matplotlib is imported on first use, so ``import energylens`` does not load it.

Examples
--------
>>> import energylens.plot as elp  # doctest: +SKIP
>>> ax = elp.parity(df["energy_j"], model.predict(df))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ._optional import import_optional

__all__ = [
    "sweetspot_curves",
    "sweetspot_heatmap",
    "parity",
    "sample_efficiency",
    "pareto",
    "discovery_front",
    "components",
    "extrapolation",
]


def _plt():
    return import_optional("matplotlib.pyplot", purpose="draw energylens plots")


def _axes(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax
    fig, ax = _plt().subplots(figsize=figsize, layout="constrained")
    return ax


# --------------------------------------------------------------------------- sweet spot
def sweetspot_curves(
    model,
    input_tokens: Sequence[float] = (64, 256, 1024, 4096),
    output_tokens: Sequence[float] | None = None,
    *,
    metric: Literal["energy_per_token", "tokens_per_joule"] = "energy_per_token",
    mark_optimum: bool = True,
    ax=None,
):
    """Energy per output token (or tokens per joule) against output length, one curve per
    input length, with the closed-form optimal output length marked.

    Parameters
    ----------
    model : SweetSpotModel
        A fitted :class:`~energylens.SweetSpotModel`.
    input_tokens : sequence of float
        Input lengths, one curve each.
    output_tokens : sequence of float, optional
        Output lengths on the x axis (default: 16 to 4096, log-spaced).
    metric : {"energy_per_token", "tokens_per_joule"}
        What the y axis shows.
    """
    if metric not in ("energy_per_token", "tokens_per_joule"):
        raise ValueError(f"metric must be 'energy_per_token' or 'tokens_per_joule'; got {metric!r}.")
    ax = _axes(ax)
    so = np.geomspace(16, 4096, 120) if output_tokens is None else np.asarray(output_tokens, float)
    for si in input_tokens:
        surf = model.efficiency_surface([si], so)
        eff = surf.to_numpy()[0]
        y = 1.0 / eff if metric == "energy_per_token" else eff
        (line,) = ax.plot(so, y, label=f"input {si:g} tokens")
        if mark_optimum:
            opt = float(model.optimal_output_tokens(si))
            if np.isfinite(opt) and so.min() <= opt <= so.max():
                e_opt = 1.0 / model.efficiency_surface([si], [opt]).to_numpy()[0, 0]
                ax.plot([opt], [e_opt if metric == "energy_per_token" else 1 / e_opt], "o",
                        color=line.get_color(), markeredgecolor="black", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("output length (tokens)")
    ax.set_ylabel("energy per output token (J/token)" if metric == "energy_per_token"
                  else "efficiency (output tokens/J)")
    ax.set_title("Sweet spot: dots mark the optimal output length")
    ax.legend(fontsize="small")
    return ax


def sweetspot_heatmap(model, input_grid: Sequence[float] | None = None,
                      output_grid: Sequence[float] | None = None, *, ax=None):
    """Efficiency (output tokens per joule) over input and output length, optimum per row marked."""
    ax = _axes(ax)
    si = np.geomspace(64, 4096, 7) if input_grid is None else np.asarray(input_grid, float)
    so = np.geomspace(16, 4096, 9) if output_grid is None else np.asarray(output_grid, float)
    surf = model.efficiency_surface(si, so)
    im = ax.imshow(surf.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(so)), [f"{v:.0f}" for v in so], rotation=45)
    ax.set_yticks(range(len(si)), [f"{v:.0f}" for v in si])
    best = surf.to_numpy().argmax(axis=1)
    ax.plot(best, range(len(si)), "w*", markersize=10, label="best output length per input")
    ax.set_xlabel("output length (tokens)")
    ax.set_ylabel("input length (tokens)")
    ax.figure.colorbar(im, ax=ax, label="efficiency (output tokens/J)")
    ax.legend(loc="upper right", fontsize="small")
    return ax


# --------------------------------------------------------------------------- accuracy
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
    """
    ax = _axes(ax, figsize=(5.0, 5.0))
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} and {y_pred.shape}.")
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
    mape = 100 * np.mean(np.abs(y_pred - y_true) / y_true)
    ax.set_title(f"Parity: MAPE {mape:.1f}%")
    ax.legend(fontsize="small")
    return ax


def sample_efficiency(results: pd.DataFrame, *, metric: str = "mape", band: str = "iqr",
                      ax=None):
    """A metric against training-set size, one line per model, with a band over seeds.

    Parameters
    ----------
    results : DataFrame
        Long results (``model, n_train, seed, metric, value``) from
        :func:`energylens.evaluation.sample_efficiency`.
    metric : str
        Which metric to plot (e.g. ``"mape"``, ``"top1"``).
    band : {"iqr", "sd"}
        Interquartile range or mean +- one standard deviation over seeds.
    """
    ax = _axes(ax)
    sub = results[results["metric"] == metric]
    if sub.empty:
        raise ValueError(f"No rows with metric {metric!r}; metrics are {sorted(results['metric'].unique())}.")
    # Average within a seed first (over scenarios or datasets), then band over seeds.
    per_seed = sub.groupby(["model", "n_train", "seed"], as_index=False)["value"].mean()
    for name, g in per_seed.groupby("model", sort=True):
        s = g.groupby("n_train")["value"]
        x = np.asarray(sorted(g["n_train"].unique()), float)
        if band == "iqr":
            mid, lo, hi = s.median(), s.quantile(0.25), s.quantile(0.75)
        else:
            mid = s.mean()
            lo, hi = mid - s.std().fillna(0), mid + s.std().fillna(0)
        (line,) = ax.plot(x, mid.to_numpy(), marker="o", label=str(name))
        ax.fill_between(x, lo.to_numpy(), hi.to_numpy(), color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("training configurations (n_train)")
    ylabel = {"mape": "MAPE (%)", "median_ape": "median APE (%)", "top1": "Top-1 accuracy (fraction)",
              "regret": "regret (fraction)", "pairwise": "pairwise accuracy (fraction)"}
    ax.set_ylabel(ylabel.get(metric, metric))
    ax.set_title(f"Sample efficiency ({'median, IQR' if band == 'iqr' else 'mean +- sd'} over seeds)")
    ax.legend(fontsize="small")
    return ax


# --------------------------------------------------------------------------- selection
def pareto(table: pd.DataFrame, *, x: str = "latency_s", y: str = "energy_j", chosen=None,
           front: pd.Series | None = None, ax=None):
    """Energy against latency for candidates, the non-dominated front, and the chosen one.

    Parameters
    ----------
    table : DataFrame
        Candidates with columns ``x`` and ``y`` (e.g. from :func:`energylens.select_config`).
    chosen : index label, optional
        Row of the chosen configuration (drawn as a star).
    front : boolean Series, optional
        Which rows are on the Pareto front; computed here when omitted.
    """
    ax = _axes(ax)
    xs, ys = table[x].to_numpy(float), table[y].to_numpy(float)
    if front is None:
        from .selection import pareto_front

        front = pareto_front(table, x=x, y=y)["pareto"]
    if isinstance(front, pd.Series):  # align by label: pareto_front returns rows sorted by x
        on = front.reindex(table.index).fillna(False).to_numpy(dtype=bool)
    else:
        on = np.asarray(front, dtype=bool)
        if on.shape != xs.shape:
            raise ValueError(f"front has {on.size} entries for {len(xs)} rows.")
    ax.scatter(xs[~on], ys[~on], s=14, color="0.6", label="dominated")
    idx = np.flatnonzero(on)
    idx = idx[np.argsort(xs[idx])]
    ax.step(xs[idx], ys[idx], where="post", color="C0")
    ax.scatter(xs[idx], ys[idx], s=22, color="C0", label="Pareto front", zorder=3)
    if chosen is not None:
        r = table.loc[chosen]
        ax.scatter([r[x]], [r[y]], marker="*", s=220, color="C3", edgecolor="black", zorder=4,
                   label="chosen")
    units = {"latency_s": "s", "ttft_s": "s", "tpot_s": "s", "energy_j": "J",
             "energy_per_output_token_j": "J/token"}
    ax.set_xlabel(f"{x} ({units.get(x, '')})")
    ax.set_ylabel(f"{y} ({units.get(y, '')})")
    ax.set_title("Energy-latency trade-off")
    ax.legend(fontsize="small")
    return ax


def discovery_front(equations: pd.DataFrame, *, selected: int | None = None, ax=None):
    """Complexity against loss of the discovered formulas, with the selected one marked.

    Parameters
    ----------
    equations : DataFrame
        ``equations_`` of a discovery result (``complexity, loss, equation``).
    selected : int, optional
        Row label of the selected formula.
    """
    ax = _axes(ax)
    eq = equations.sort_values("complexity")
    ax.plot(eq["complexity"], eq["loss"], "o-", color="C0", label="Pareto front")
    if selected is not None and selected in eq.index:
        r = eq.loc[selected]
        ax.plot([r["complexity"]], [r["loss"]], "*", markersize=16, color="C3",
                markeredgecolor="black", label="selected")
        text = str(r.get("equation", ""))
        ax.annotate(text if len(text) < 60 else text[:57] + "...", (r["complexity"], r["loss"]),
                    textcoords="offset points", xytext=(8, 8), fontsize="x-small")
    ax.set_yscale("log")
    ax.set_xlabel("complexity (nodes or terms)")
    ax.set_ylabel("loss (mean squared relative error)")
    ax.set_title("Discovered formulas")
    ax.legend(fontsize="small")
    return ax


def components(model, candidates: pd.DataFrame, *, labels: Sequence[str] | None = None,
               ax=None):
    """Stacked prefill, decode and static energy per request across candidates."""
    ax = _axes(ax, figsize=(max(5.0, 0.45 * len(candidates) + 2), 4.0))
    comp = model.predict_components(candidates)
    x = np.arange(len(comp))
    bottom = np.zeros(len(comp))
    for col, name in (("prefill_j", "prefill"), ("decode_j", "decode"), ("static_j", "static")):
        ax.bar(x, comp[col].to_numpy(), bottom=bottom, label=name)
        bottom += comp[col].to_numpy()
    if labels is None:
        cols = [c for c in ("gpu", "tp", "pp", "batch_size") if c in candidates.columns]
        labels = [" ".join(f"{c}={r[c]:g}" if isinstance(r[c], (int, float, np.number)) else str(r[c])
                           for c in cols) for _, r in candidates.iterrows()]
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize="x-small")
    ax.set_ylabel("energy per request (J)")
    ax.set_title("Where the energy goes")
    ax.legend(fontsize="small")
    return ax


def extrapolation(train: pd.DataFrame, test: pd.DataFrame, model, *, x: str = "batch_size",
                  y: str = "energy_j", ax=None):
    """Measured and predicted energy against ``x`` for training rows and extrapolated rows."""
    ax = _axes(ax)
    ax.scatter(train[x], train[y], s=16, color="C0", label="training (measured)")
    ax.scatter(test[x], test[y], s=16, color="C1", label="held out (measured)")
    ax.scatter(test[x], model.predict(test), s=30, marker="x", color="C3", label="held out (predicted)")
    if len(train):
        ax.axvline(float(np.max(train[x])), color="0.5", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{x} ({'requests' if x == 'batch_size' else ''})")
    ax.set_ylabel("energy per request (J)")
    ax.set_title("Extrapolation beyond the training range")
    ax.legend(fontsize="small")
    return ax
