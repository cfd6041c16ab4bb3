"""Plots about choices: the energy-latency front, the energy split, discovered formulas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._base import axes, label, plot_function

if TYPE_CHECKING:
    from ..discovery import DiscoveryResult

__all__ = ["pareto", "components", "discovery_front"]


def _front_mask(table: pd.DataFrame, x: str, y: str, front) -> np.ndarray:
    if front is None:
        from ..selection import pareto_front

        # by position: pareto_front sorts the rows, and labels may repeat
        flat = table[[x, y]].reset_index(drop=True)
        return pareto_front(flat, x=x, y=y)["pareto"].sort_index().to_numpy(dtype=bool)
    if isinstance(front, pd.Series):  # align by label: pareto_front returns rows sorted by x
        if not table.index.is_unique or not front.index.is_unique:
            raise ValueError("front is a Series aligned by index label, but labels repeat in "
                             "the table or in front; give front as a boolean array in the "
                             "table's row order, or reset the table's index.")
        return front.reindex(table.index).fillna(False).to_numpy(dtype=bool)
    on = np.asarray(front, dtype=bool)
    if on.shape != (len(table),):
        raise ValueError(f"front has {on.size} entries for {len(table)} rows.")
    return on


_LATENCY = ("latency_s", "ttft_s", "tpot_s")


def _check_pareto(table, x: str, y: str, chosen) -> None:
    """Say what a table given to :func:`pareto` lacks, and how to get it."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"pareto needs a DataFrame of candidates; got {type(table).__name__}.")
    for axis, col in (("x", x), ("y", y)):
        if col in table.columns:
            continue
        hint = ""
        if col in _LATENCY:
            have = [c for c in _LATENCY if c in table.columns]
            hint = (f" The table has {have}: pass x={have[0]!r}." if have else
                    " select_config adds predicted latency only with a latency model: "
                    "select_config(model, candidates, latency_model=energylens.LatencyModel("
                    f"target={col!r}).fit(table)); or measure it (a column {col!r}).")
        raise ValueError(f"pareto draws {axis}={col!r}, a column the table lacks (columns: "
                         f"{list(table.columns)[:12]}{' ...' if table.shape[1] > 12 else ''})."
                         + hint)
    if chosen is not None:
        if chosen not in table.index:
            raise ValueError(f"chosen={chosen!r} is not a row label of the table.")
        if not table.index.is_unique and np.sum(table.index == chosen) > 1:
            raise ValueError(f"chosen={chosen!r} labels several rows of the table; reset its "
                             "index (table.reset_index(drop=True)) and choose one.")


#: What a limit on each latency column is called in a legend.
_LIMIT_NAMES = {"latency_s": "latency", "tpot_s": "TPOT", "ttft_s": "TTFT"}


@plot_function
def pareto(table: pd.DataFrame, *, x: str = "latency_s", y: str = "energy_j", chosen=None,
           front: pd.Series | None = None, limit: float | None = None,
           log: bool | None = None, ax=None):
    """Energy against latency for candidates, the non-dominated front, and the chosen one.

    Parameters
    ----------
    table : DataFrame
        Candidates with columns ``x`` and ``y`` (e.g. from :func:`energylens.select_config`
        given a ``latency_model`` whose ``target`` is ``x``: without one it predicts no
        latency, and the error says so).
    x, y : str
        Columns on the axes (labelled in words with their units).
    chosen : index label, optional
        Row of the chosen configuration (drawn as a star; named "least energy within the
        limit" where ``limit`` is given and it meets it, "chosen (beyond the limit)" where it
        does not).
    front : boolean Series, optional
        Which rows are on the Pareto front; computed here when omitted.
    limit : float, optional
        A latency limit on ``x`` (a dashed line; the region beyond it shaded), named after
        the column (``"TPOT limit"`` for ``tpot_s``).
    log : bool, optional
        Log axes; by default where the values span more than a factor of 20.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        A column ``x`` or ``y`` the table lacks (saying how to get a latency column), a
        ``chosen`` label that is not one row, or a ``front`` that does not fit the table;
        checked before any figure is made.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"latency_s": [1, 2, 3], "energy_j": [10, 6, 5]})
    >>> ax = pareto(t, chosen=1, limit=2.5)  # doctest: +SKIP
    """
    _check_pareto(table, x, y, chosen)
    xs, ys = table[x].to_numpy(float), table[y].to_numpy(float)
    on = _front_mask(table, x, y, front)
    ax = axes(ax)
    ax.scatter(xs[~on], ys[~on], s=14, color="0.6", label="dominated")
    idx = np.flatnonzero(on)
    idx = idx[np.argsort(xs[idx])]
    ax.step(xs[idx], ys[idx], where="post", color="C0")
    ax.scatter(xs[idx], ys[idx], s=22, color="C0", label="Pareto front", zorder=3)
    if limit is not None:
        what = _LIMIT_NAMES.get(x, "latency")
        ax.axvline(limit, color="C3", ls="--", lw=1, label=f"{what} limit {limit:.3g} s")
        ax.axvspan(limit, max(float(xs.max()), limit) * 1.05, color="C3", alpha=0.06,
                   label="beyond the limit")
    if chosen is not None:
        r = table.loc[chosen]
        if limit is None:
            what = "chosen"
        elif float(r[x]) <= limit:
            what = "least energy within the limit"
        else:
            what = "chosen (beyond the limit)"
        ax.scatter([r[x]], [r[y]], marker="*", s=220, color="C3", edgecolor="black", zorder=4,
                   label=what)
    if log is None:
        log = bool(xs.min() > 0 and ys.min() > 0
                   and max(xs.max() / xs.min(), ys.max() / ys.min()) > 20)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title("Energy-latency trade-off")
    ax.legend(fontsize="x-small", loc="best")
    return ax


def _front_table(equations, selected):
    """The front to draw, the selected row and whether the loss is of the log: from a
    :class:`~energylens.discovery.DiscoveryResult` (its formulas to four significant digits,
    its own selection unless ``selected`` is given) or from its ``equations_`` table."""
    if isinstance(equations, pd.DataFrame):
        return equations, selected, False
    if not isinstance(getattr(equations, "equations_", None), pd.DataFrame):
        raise TypeError("discovery_front needs the DiscoveryResult returned by discover() or its "
                        f"equations_ table (complexity, loss, equation); got {type(equations).__name__}.")
    res = equations
    eq = res.equations_.copy()
    eq["equation"] = [res.equation(i, digits=4) for i in range(len(eq))]
    return eq, (res.best_index_ if selected is None else selected), bool(getattr(res, "log", False))


def _exact_floor(loss: np.ndarray) -> float:
    """Where a loss of 0 is drawn on a log axis: a tenth of the smallest positive loss."""
    positive = loss[np.isfinite(loss) & (loss > 0)]
    return float(positive.min()) / 10.0 if positive.size else 1e-12


@plot_function
def discovery_front(equations: DiscoveryResult | pd.DataFrame, *, selected: int | None = None,
                    ax=None):
    """Complexity against loss of the discovered formulas, with the selected one marked.

    The selected formula's text sits inside the axes (top right), with an arrow to its
    point, so it never runs off the figure. The loss axis is logarithmic: an exact fit
    (loss 0) is drawn at a floor a tenth of the smallest positive loss, as a hollow
    triangle named in the legend ("exact fit (loss 0)"), and the selected formula's text
    says so when it is one.

    Parameters
    ----------
    equations : DiscoveryResult or DataFrame
        A result of :func:`energylens.discovery.discover` (its selected formula is marked
        and the formulas are written to four significant digits), or its ``equations_``
        table (``complexity, loss, equation``).
    selected : int, optional
        Row label of the selected formula (default for a result: its ``best_index_``).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = discovery_front(discover(df, engine="terms"))  # doctest: +SKIP
    >>> ax = discovery_front(result.equations_, selected=result.best_index_)  # doctest: +SKIP
    """
    eq, selected, log = _front_table(equations, selected)
    ax = axes(ax)
    eq = eq.sort_values("complexity")
    loss = eq["loss"].to_numpy(dtype=float)
    exact = loss == 0
    floor = _exact_floor(loss)
    drawn = pd.Series(np.where(exact, floor, loss), index=eq.index)
    ax.plot(eq["complexity"], drawn, "o-", color="C0", label="Pareto front")
    if selected is not None and selected in eq.index:
        r = eq.loc[selected]
        ax.plot([r["complexity"]], [drawn.loc[selected]], "*", markersize=16, color="C3",
                markeredgecolor="black", label="selected")
        text = str(r.get("equation", ""))
        text = text if len(text) <= 48 else text[:45] + "..."
        if float(r["loss"]) == 0:
            text += f"\nexact fit: loss 0, drawn at {floor:.2g}"
        ax.annotate(text, (r["complexity"], drawn.loc[selected]), xytext=(0.97, 0.95),
                    textcoords="axes fraction", ha="right", va="top", fontsize="x-small",
                    arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.8},
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"})
    if exact.any():
        ax.plot(eq["complexity"].to_numpy()[exact], np.full(int(exact.sum()), floor), "v",
                markersize=9, markerfacecolor="none", markeredgecolor="C2", zorder=4,
                label=f"exact fit (loss 0), drawn at {floor:.2g}")
    ax.set_yscale("log")
    ax.set_xlabel("complexity (nodes or terms)")
    ax.set_ylabel("loss (mean squared error of the log)" if log
                  else "loss (mean squared relative error)")
    ax.set_title("Discovered formulas")
    ax.legend(fontsize="small", loc="lower left")
    return ax


@plot_function
def components(model, candidates: pd.DataFrame, *, labels: Sequence[str] | None = None,
               ax=None):
    """Stacked prefill, decode and static energy per request across candidates.

    Examples
    --------
    >>> ax = components(model, candidates.head(8))  # doctest: +SKIP
    """
    ax = axes(ax, figsize=(max(5.0, 0.45 * len(candidates) + 2), 4.0))
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
