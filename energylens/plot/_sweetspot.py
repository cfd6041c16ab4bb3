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


def _lengths(values, name: str, owner: str) -> np.ndarray:
    """``values`` as floats, each a finite number > 0; a ``ValueError`` naming ``name``
    where it is empty or holds anything else."""
    try:
        out = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        out = None
    if out is None or out.size == 0 or not np.all(np.isfinite(out) & (out > 0)):
        what = "is empty" if out is not None and out.size == 0 else f"is {values!r}"
        raise ValueError(f"{owner}: {name} must hold one or more lengths in tokens, each a "
                         f"finite number > 0; it {what}.")
    return out


def _measured_points(data: pd.DataFrame | None, owner: str) -> pd.DataFrame | None:
    """The measured rows as ``input_tokens, output_tokens, per_token`` (J per output token:
    ``energy_per_output_token_j``, or ``energy_j / output_tokens`` where the table has no
    such column)."""
    if data is None:
        return None
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"{owner}: data must be a table (DataFrame) of the measured rows; got "
                         f"{type(data).__name__}.")
    have = set(data.columns)
    energy = ("energy_per_output_token_j" if "energy_per_output_token_j" in have
              else "energy_j" if "energy_j" in have else None)
    missing = [c for c in ("input_tokens", "output_tokens") if c not in have]
    if missing or energy is None:
        need = missing + ([] if energy else ["energy_per_output_token_j (or energy_j)"])
        raise ValueError(f"{owner}: data needs the column(s) {need} to draw the measured points; "
                         f"it has {list(map(str, data.columns))[:12]}.")
    si = pd.to_numeric(data["input_tokens"], errors="coerce").to_numpy(float)
    so = pd.to_numeric(data["output_tokens"], errors="coerce").to_numpy(float)
    e = pd.to_numeric(data[energy], errors="coerce").to_numpy(float)
    with np.errstate(all="ignore"):
        per_token = e if energy == "energy_per_output_token_j" else e / so
    return pd.DataFrame({"input_tokens": si, "output_tokens": so, "per_token": per_token})


def _measured_range(model, name: str, fallback: tuple[float, float]) -> tuple[float, float]:
    domain = getattr(model, "domain_", None)
    lo, hi = (getattr(domain, "ranges", None) or {}).get(name, fallback)
    return float(lo), float(hi)


def _default_inputs(model, points: pd.DataFrame | None) -> list[float]:
    si = None if points is None else points["input_tokens"].to_numpy(float)
    if si is not None and np.any(np.isfinite(si) & (si > 0)):
        values = np.unique(si[np.isfinite(si) & (si > 0)])
        idx = np.unique(np.linspace(0, len(values) - 1, min(4, len(values))).round().astype(int))
        return [float(values[i]) for i in idx]
    lo, hi = _measured_range(model, "si", (64.0, 4096.0))
    return [float(v) for v in np.unique(np.geomspace(lo, hi, 4).round())]


def _optima(model, inputs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an optimum outside the data is drawn as such
        return np.asarray(model.optimal_output_tokens(np.asarray(inputs, float)), dtype=float)


def _grid(lo: float, hi: float, optima: np.ndarray, output_tokens) -> np.ndarray:
    """Output lengths of the curves, sorted, with the ends of the measured range ``lo, hi``
    where they lie within the grid (so that the solid and dashed parts meet there)."""
    if output_tokens is not None:
        given = _lengths(output_tokens, "output_tokens", "sweetspot_curves")
        ends = [v for v in (lo, hi) if given.min() <= v <= given.max()]
        return np.unique(np.concatenate([given, ends]))
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
        y = pts["per_token"].to_numpy(float)
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
        Input lengths, one curve each, in the order given (default: up to four of the
        measured ones).
    output_tokens : sequence of float, optional
        Output lengths on the x axis (default: the measured range, extended to show an
        optimum beyond it). They are sorted, and the ends of the measured range that lie
        between the smallest and the largest are added, where the solid part of each curve
        meets the dashed one.
    data : DataFrame, optional
        The measured rows, drawn as points on their curve: ``input_tokens``,
        ``output_tokens`` and ``energy_per_output_token_j`` (or ``energy_j``, divided here
        by ``output_tokens``).
    metric : {"energy_per_token", "tokens_per_joule"}
        What the y axis shows.
    mark_optimum : bool
        Mark the optimal output length of each curve.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The first ``len(input_tokens)`` lines are the solid curves, in order.

    Raises
    ------
    ValueError
        An ``input_tokens`` or ``output_tokens`` that is empty or holds a length that is not
        a finite number > 0, or a ``data`` table without the columns above (checked before
        any figure is made).

    Examples
    --------
    >>> import energylens, energylens.plot as elp  # doctest: +SKIP
    >>> ax = elp.sweetspot_curves(energylens.SweetSpotModel().fit(sweep), data=sweep)  # doctest: +SKIP
    """
    if metric not in ("energy_per_token", "tokens_per_joule"):
        raise ValueError(f"metric must be 'energy_per_token' or 'tokens_per_joule'; got {metric!r}.")
    _check_sweetspot(model, "sweetspot_curves")
    points = _measured_points(data, "sweetspot_curves")
    inputs = ([float(v) for v in _lengths(input_tokens, "input_tokens", "sweetspot_curves")]
              if input_tokens is not None else _default_inputs(model, points))
    lo, hi = _measured_range(model, "so", (16.0, 4096.0))
    optima = _optima(model, inputs)
    so = _grid(lo, hi, optima, output_tokens)
    ax = axes(ax)
    inside = (so >= lo * (1 - 1e-9)) & (so <= hi * (1 + 1e-9))
    # the dashed part: the lengths outside the measured range and their neighbours inside
    # it (the range's ends), so that it meets the solid part
    beyond = ~inside
    beyond[:-1] |= ~inside[1:]
    beyond[1:] |= ~inside[:-1]
    lines = []
    for si in inputs:
        y = _y(model, si, so, metric)
        yin = np.where(inside, y, np.nan)
        (line,) = ax.plot(so, yin, label=f"input {si:g} tokens")
        lines.append((si, line.get_color(), y))
    for i, (si, color, y) in enumerate(lines):
        ax.plot(so, np.where(beyond, y, np.nan), ls="--", color=color)
        _draw_data(ax, points, si, color, metric)
        if mark_optimum:
            _draw_optimum(ax, model, si, optima[i], lo, hi, color, metric)
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
    ``TypeError``, as for :func:`sweetspot_curves`); ``input_grid`` and ``output_grid``
    (rows and columns, in the order given) must each hold one or more lengths that are
    finite numbers > 0, or a ``ValueError`` names the one that does not.

    Examples
    --------
    >>> ax = sweetspot_heatmap(fitted_sweetspot)  # doctest: +SKIP
    """
    _check_sweetspot(model, "sweetspot_heatmap")
    si = (np.geomspace(64, 4096, 7) if input_grid is None
          else _lengths(input_grid, "input_grid", "sweetspot_heatmap"))
    so = (np.geomspace(16, 4096, 9) if output_grid is None
          else _lengths(output_grid, "output_grid", "sweetspot_heatmap"))
    ax = axes(ax)
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
