"""The report's figures, each drawn on its own :class:`~matplotlib.figure.Figure` from the
analysis (plotting never fits: the models are those of the analysis)."""

from __future__ import annotations

import warnings

import numpy as np

from .. import plot as elp
from .choices import designed_lengths, input_text, inputs_assumed
from .fitting import fitted_groups_mask
from .html import figure, img
from .lengths import caption

__all__ = ["parity", "components", "discovery", "efficiency", "front", "sweet_spot"]


def parity(a) -> str:
    rows = a.data[fitted_groups_mask(a.model, a.data)]
    fig, ax = figure((5.6, 5.0))
    hue = rows[a.by[-1]] if a.by else None
    elp.parity(rows["energy_j"], a.model.predict(rows), hue=hue, ax=ax)
    return img(fig, f"In-sample parity of the fitted model over {len(rows)} rows (log axes, "
                    "+-10% band)")


def components(a) -> str:
    pv = a.parameters
    if pv.model is None or not hasattr(pv.model, "predict_components"):
        return ""
    rows = a.data
    for c, v in zip(a.by, pv.key):
        rows = rows[rows[c] == v]
    for c in designed_lengths(rows):
        counts = rows[c].value_counts()
        rows = rows[rows[c] == counts.idxmax()]
    cand = rows.sort_values("energy_j").head(10)
    if cand.empty:
        return ""
    fig, ax = figure((max(5.0, 0.5 * len(cand) + 2.5), 4.2))
    elp.components(pv.model, cand, ax=ax)
    inputs = input_text(cand["input_tokens"].median(), bool(inputs_assumed(cand).any()))
    lengths = f"{inputs} input and {cand['output_tokens'].median():.4g} output tokens"
    return img(fig, f"Prefill, decode and static energy per request of the {len(cand)} least-energy "
                    f"measured configurations of {pv.title}, at {lengths}")


def discovery(result, shown) -> str:
    fig, ax = figure((6.0, 4.0))
    elp.discovery_front(shown, selected=getattr(result, "best_index_", None), ax=ax)
    return img(fig, "Pareto front of discovered formulas (complexity against loss); the star "
                    "is the selected one")


def efficiency(cmp, metric: str) -> str:
    if metric not in set(cmp.long["metric"]):
        return ""
    fig, ax = figure((6.4, 4.0))
    # Means over seeds, the statistic of the comparison table and the headline.
    elp.sample_efficiency(cmp.long, metric=metric, band="sd", ax=ax)
    what = {"mape": "MAPE on held-out rows", "top1": "Top-1 selection accuracy"}[metric]
    return img(fig, f"{what} by training rows per group; lines are means over {cmp.seeds} "
                    "seeds, as in the tables, bands one standard deviation either side")


def front(f: dict) -> str:
    fig, ax = figure((6.4, 4.4))
    elp.pareto(f["table"], x=f["x"], y=f["y"], chosen=f["chosen"], front=f["front"],
               limit=f["limit"], ax=ax)
    ax.set_title(f"Energy against {f['quantity']}")
    assumed = bool(inputs_assumed(f["table"]).any())
    what = ", ".join(f"{k} {input_text(v, assumed)}" if k == "input_tokens"
                     else f"{k} {v:g}" if isinstance(v, (int, float, np.number)) else f"{k} {v}"
                     for k, v in f["scenario"].items())
    source = "given with --max-latency" if f["limit_given"] else "twice the fastest measured"
    star = ("the star is the least-energy configuration within it" if f["chosen"] is not None
            else f"no configuration meets it (the fastest takes {f['fastest']:.3g} s), so none "
                 "is marked")
    return img(fig, f"Energy against {f['quantity']} of the {len(f['table'])} measured "
                    f"configurations of {what}; {f['short']} limit {f['limit']:.3g} s ({source}); "
                    f"{star}")


def sweet_spot(s) -> str:
    fig, ax = figure((7.4, 4.2))
    inputs = np.sort(s.rows["input_tokens"].unique())
    pick = np.unique(np.r_[inputs[np.linspace(0, len(inputs) - 1, min(3, len(inputs))).round()
                                  .astype(int)], s.input_tokens])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elp.sweetspot_curves(s.model, input_tokens=list(pick), data=s.rows, ax=ax)
    return img(fig, f"Energy per output token, {caption(s.key)}: measured points, the fit "
                    "(dashed beyond the measured output lengths) and the optimal output length")
