"""Shared helpers of the plots: axes, words for columns, readable ticks."""

from __future__ import annotations

import functools
import sys
from contextvars import ContextVar

from .._optional import import_optional

__all__ = ["axes", "LABELS", "label", "plain_ticks", "plot_function"]

#: Figures made by :func:`axes` during the current plot call (None outside one).
_MADE: ContextVar[list | None] = ContextVar("energylens_plot_figures", default=None)

#: Column -> axis label in words, with its unit.
LABELS = {
    "latency_s": "latency per request (s)",
    "ttft_s": "time to first token (s)",
    "tpot_s": "time per output token (s)",
    "energy_j": "energy per request (J)",
    "energy_per_output_token_j": "energy per output token (J/token)",
    "batch_size": "batch size (requests)",
    "input_tokens": "input length (tokens)",
    "output_tokens": "output length (tokens)",
    "tp": "tensor-parallel degree",
    "pp": "pipeline-parallel degree",
    "power_w": "power (W)",
}


def label(column: str) -> str:
    """An axis label for ``column``: words and unit where known, the name otherwise."""
    return LABELS.get(column, column)


def axes(ax, figsize=(6.0, 4.0)):
    """``ax``, or the axes of a new pyplot figure (constrained layout) when None."""
    if ax is not None:
        return ax
    plt = import_optional("matplotlib.pyplot", purpose="draw energylens plots")
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    made = _MADE.get()
    if made is not None:
        made.append(fig)
    return ax


def plot_function(fn):
    """Decorate a plot function: a pyplot figure it made is closed if it then fails.

    Arguments are checked before any figure is made; this covers what fails later (a
    model's prediction, a column a computation needs), so that a failed call never leaves
    an empty figure open in pyplot.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        made: list = []
        token = _MADE.set(made)
        try:
            return fn(*args, **kwargs)
        except BaseException:
            plt = sys.modules.get("matplotlib.pyplot")
            for fig in made if plt is not None else ():
                plt.close(fig)
            raise
        finally:
            _MADE.reset(token)

    return wrapper


def plain_ticks(axis, values) -> None:
    """Ticks of a log axis at ``values``, written as plain numbers (20, 50, not 2x10^1)."""
    ticker = import_optional("matplotlib.ticker", purpose="draw energylens plots")
    values = sorted({float(v) for v in values})
    axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FixedFormatter([f"{v:g}" for v in values]))
    axis.set_minor_locator(ticker.NullLocator())
