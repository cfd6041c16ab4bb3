"""Sweet-spot plots: energy per output token against output length."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ._base import axes, plain_ticks, plot_function

__all__ = ["sweetspot_curves", "sweetspot_heatmap"]


def _check_sweetspot(model, owner: str) -> None:
    """A ``TypeError`` naming what is needed, for a model without the sweet-spot closed form."""
    missing = [m for m in ("optimal_output_tokens", "efficiency_surface")
               if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(
            f"{owner} needs a fitted SweetSpotModel (energy per output token as a function of "
            f"input and output length, with its closed-form optimal output length); got "
            f"{type(model).__name__}, which has no {' or '.join(missing)}. Fit one on a length "
            "sweep: energylens.SweetSpotModel().fit(sweep).")


def _measured_range(model, name: str, fallback: tuple[float, float]) -> tuple[float, float]:
    domain = getattr(model, "domain_", None)
    lo, hi = (getattr(domain, "ranges", None) or {}).get(name, fallback)
    return float(lo), float(hi)


def _default_inputs(model, data: pd.DataFrame | None) -> list[float]:
    if data is not None and "input_tokens" in data:
        values = np.sort(data["input_tokens"].unique())
        idx = np.unique(np.linspace(0, len(values) - 1, min(4, len(values))).round().astype(int))
        return [float(values[i]) for i in idx]
    lo, hi = _measured_range(model, "si", (64.0, 4096.0))
    return [float(v) for v in np.unique(np.geomspace(lo, hi, 4).round())]


def _optima(model, inputs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an optimum outside the data is drawn as such
        return np.asarray(model.optimal_output_tokens(np.asarray(inputs, float)), dtype=float)


def _grid(lo: float, hi: float, optima: np.ndarray, output_tokens) -> np.ndarray:
    if output_tokens is not None:
        return np.asarray(output_tokens, dtype=float)
    finite = optima[np.isfinite(optima)]
    top = max(hi, min(float(finite.max()) * 1.3, 8 * hi)) if finite.size else hi
    bot = min(lo, max(float(finite.min()) / 1.3, lo / 8)) if finite.size else lo
    return np.unique(np.concatenate([np.geomspace(bot, top, 160), [lo, hi]]))


def _y(model, si: float, so: np.ndarray, metric: str) -> np.ndarray:
    eff = model.efficiency_surface([si], so).to_numpy()[0]
    return 1.0 / eff if metric == "energy_per_token" else eff


def _draw_data(ax, data, si, color, metric) -> None:
    if data is None:
        return
    pts = data[np.isclose(data["input_tokens"].to_numpy(float), si)]
    if len(pts):
        y = pts["energy_per_output_token_j"].to_numpy(float)
        ax.scatter(pts["output_tokens"], y if metric == "energy_per_token" else 1 / y, s=18,
                   color=color, edgecolor="white", linewidths=0.5, zorder=4)


def _draw_optimum(ax, model, si, opt, lo, hi, color, metric) -> None:
    if not np.isfinite(opt):
        return
    inside = lo * (1 - 1e-9) <= opt <= hi * (1 + 1e-9)
    y = _y(model, si, np.array([opt]), metric)[0]
    ax.plot([opt], [y], "o", markersize=8, zorder=5, color=color if inside else "white",
            markeredgecolor="black" if inside else color, markeredgewidth=1.0 if inside else 2.0)


def _legend(ax) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="-"), Line2D([], [], color="0.3", ls="--"),
                Line2D([], [], ls="", marker="o", color="0.5", markeredgecolor="black"),
                Line2D([], [], ls="", marker="o", color="white", markeredgecolor="0.3",
                       markeredgewidth=2.0)]
    labels += ["fit, measured lengths", "fit, beyond them", "optimal output length",
               "optimum outside the data (extrapolated)"]
    ax.legend(handles, labels, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)


@plot_function
def sweetspot_curves(
    model,
    input_tokens: Sequence[float] | None = None,
    output_tokens: Sequence[float] | None = None,
    *,
    data: pd.DataFrame | None = None,
    metric: Literal["energy_per_token", "tokens_per_joule"] = "energy_per_token",
    mark_optimum: bool = True,
    ax=None,
):
    """Energy per output token (or tokens per joule) against output length, one curve per
    input length, with the measured points and the closed-form optimal output length.

    Curves are solid over the output lengths the model was fitted on and dashed beyond;
    an optimum inside that range is a filled dot, one outside it a hollow ring
    (an extrapolation).

    Parameters
    ----------
    model : SweetSpotModel
        A fitted :class:`~energylens.SweetSpotModel`. Other models (``EnergyLensModel``,
        ``HierarchicalEnergyModel``) are refused with a ``TypeError``: their energy depends
        on the whole configuration (parallel layout, batch, GPU), not on the two lengths
        alone, and they have no closed-form optimal output length to mark.
    input_tokens : sequence of float, optional
        Input lengths, one curve each (default: up to four of the measured ones).
    output_tokens : sequence of float, optional
        Output lengths on the x axis (default: the measured range, extended to show an
        optimum beyond it).
    data : DataFrame, optional
        The measured rows (canonical columns), drawn as points on their curve.
    metric : {"energy_per_token", "tokens_per_joule"}
        What the y axis shows.
    mark_optimum : bool
        Mark the optimal output length of each curve.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The first ``len(input_tokens)`` lines are the solid curves, in order.

    Examples
    --------
    >>> import energylens, energylens.plot as elp  # doctest: +SKIP
    >>> ax = elp.sweetspot_curves(energylens.SweetSpotModel().fit(sweep), data=sweep)  # doctest: +SKIP
    """
    if metric not in ("energy_per_token", "tokens_per_joule"):
        raise ValueError(f"metric must be 'energy_per_token' or 'tokens_per_joule'; got {metric!r}.")
    _check_sweetspot(model, "sweetspot_curves")
    ax = axes(ax)
    inputs = list(input_tokens) if input_tokens is not None else _default_inputs(model, data)
    lo, hi = _measured_range(model, "so", (16.0, 4096.0))
    optima = _optima(model, inputs)
    so = _grid(lo, hi, optima, output_tokens)
    inside = (so >= lo * (1 - 1e-9)) & (so <= hi * (1 + 1e-9))
    lines = []
    for si in inputs:
        y = _y(model, si, so, metric)
        yin = np.where(inside, y, np.nan)
        (line,) = ax.plot(so, yin, label=f"input {si:g} tokens")
        lines.append((si, line.get_color(), y))
    for si, color, y in lines:
        ax.plot(so, np.where(inside, np.nan, y), ls="--", color=color)
        _draw_data(ax, data, si, color, metric)
        if mark_optimum:
            _draw_optimum(ax, model, si, optima[inputs.index(si)], lo, hi, color, metric)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_ticks(ax.xaxis, [v for v in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
                           if so.min() <= v <= so.max()] or [so.min(), so.max()])
    ax.set_xlabel("output length (tokens)")
    ax.set_ylabel("energy per output token (J/token)" if metric == "energy_per_token"
                  else "efficiency (output tokens/J)")
    ax.set_title("Sweet spot: the optimal output length per input")
    _legend(ax)
    return ax


@plot_function
def sweetspot_heatmap(model, input_grid: Sequence[float] | None = None,
                      output_grid: Sequence[float] | None = None, *, ax=None):
    """Efficiency (output tokens per joule) over input and output length; a star marks the
    best output length of each input length (named in the title, so no legend covers it).

    ``model`` is a fitted :class:`~energylens.SweetSpotModel` (any other model is a
    ``TypeError``, as for :func:`sweetspot_curves`).

    Examples
    --------
    >>> ax = sweetspot_heatmap(fitted_sweetspot)  # doctest: +SKIP
    """
    _check_sweetspot(model, "sweetspot_heatmap")
    ax = axes(ax)
    si = np.geomspace(64, 4096, 7) if input_grid is None else np.asarray(input_grid, float)
    so = np.geomspace(16, 4096, 9) if output_grid is None else np.asarray(output_grid, float)
    surf = model.efficiency_surface(si, so)
    im = ax.imshow(surf.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(so)), [f"{v:.0f}" for v in so], rotation=45)
    ax.set_yticks(range(len(si)), [f"{v:.0f}" for v in si])
    best = surf.to_numpy().argmax(axis=1)
    ax.plot(best, range(len(si)), "w*", markersize=10, markeredgecolor="black")
    ax.set_xlabel("output length (tokens)")
    ax.set_ylabel("input length (tokens)")
    ax.set_title("Efficiency; stars: best output length per input", fontsize="medium")
    ax.figure.colorbar(im, ax=ax, label="efficiency (output tokens/J)")
    return ax
