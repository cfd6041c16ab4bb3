"""The report's sections, as HTML, from an :class:`~energylens.report.analysis.Analysis`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import figures
from .choices import ASSUMED, ASSUMED_COLUMN, input_text, inputs_assumed, scenario_words
from .fitting import is_hierarchical
from .html import esc, number, sentence, table

__all__ = ["headline", "data_section", "fit_section", "discovery_section",
           "comparison_section", "best_section", "front_section", "sweet_section",
           "warnings_section", "SECTIONS", "short", "headline_table", "headline_numbers",
           "accuracy_table", "shown_inputs", "ASSUMED_NOTE"]


def short(expr, digits: int = 4) -> str:
    """A sympy expression with its constants rounded for display."""
    import sympy

    return str(expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)}))


def _interval(lo: float, hi: float) -> str:
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{lo:.4g} to {hi:.4g}"
    return "not estimable (too few rows in this group for an interval)"


def _scenario(a) -> str:
    """What makes one scenario, in words (and that the GPU is a choice where it is)."""
    gpu = "gpu" in a.data.columns and "gpu" not in a.scenario
    return esc(scenario_words(a.scenario) + ("; the GPU is one of the choices, since the table "
                                             "measured one configuration per GPU" if gpu else ""))


#: What the mark of an assumed input length means, under every table that shows one.
ASSUMED_NOTE = (f"{ASSUMED}: the table records no prompt length there; its reader filled in a "
                "nominal length per task (column input_tokens_assumed), an order of magnitude, "
                "not a measurement.")


def _marks(t) -> bool:
    """Whether a table the page shows marks an assumed input length."""
    if not isinstance(t, pd.DataFrame):
        return False
    if "input tokens assumed" in t.columns:  # the headline's own words
        return bool(t["input tokens assumed"].astype(bool).any())
    return "input_tokens" in t.columns and bool(inputs_assumed(t).any())


def _assumed_note(*frames) -> str:
    """The note on assumed input lengths, under tables that mark one ('' otherwise)."""
    return f'<p class="note">{esc(ASSUMED_NOTE)}</p>' if any(map(_marks, frames)) else ""


def shown_inputs(t: pd.DataFrame) -> pd.DataFrame:
    """A table as the page shows it: an assumed input length marked in its cell
    (:func:`~energylens.report.choices.input_text`) and the flag column, which its CSV
    keeps, left out."""
    if ASSUMED_COLUMN not in t.columns:
        return t
    flags = inputs_assumed(t)
    out = t.drop(columns=ASSUMED_COLUMN)
    if flags.any() and "input_tokens" in out.columns:
        out["input_tokens"] = [input_text(v, a) for v, a in zip(out["input_tokens"], flags)]
    return out


def headline_table(h: pd.DataFrame) -> pd.DataFrame:
    """The headline's recommendations in words (every missing value explained; an assumed
    input length marked)."""
    keep = [c for c in ("model", "gpu", "workload") if c in h.columns]
    out = h[keep].copy()
    assumed = (h["input tokens assumed"].to_numpy(dtype=bool) if "input tokens assumed" in h
               else np.zeros(len(h), dtype=bool))
    out["lengths (in / out tokens)"] = [f"{input_text(i, a)} / {o:.4g}" for i, a, o in
                                        zip(h["input tokens"], assumed, h["output tokens"])]
    out["configurations"] = h["candidates"]
    out["recommended"] = h["recommended"]
    out["predicted J/request"] = h["predicted energy (J/request)"]
    out["90% interval (J)"] = [_interval(lo, hi) for lo, hi in
                               zip(h["interval low (J)"], h["interval high (J)"])]
    out["predicted J/output token"] = h["predicted J/output token"]
    out["measured J/request"] = [number(v) if np.isfinite(v) else "not measured at these lengths"
                                 for v in h["measured energy (J/request)"]]
    out["next best, and how much more it costs"] = [
        f"{r} (+{c:.1f}%)" for r, c in zip(h["runner-up"], h["runner-up costs (%)"])]
    out["note"] = ["extrapolated: outside the data the model was fitted on" if e else ""
                   for e in h["extrapolated"]]
    return out


def headline_numbers(h: pd.DataFrame) -> pd.DataFrame:
    """The headline's recommendations as ``headline.csv`` holds them: every number in its
    own column, unrounded (the interval's ends apart; a missing value left empty, where
    :func:`headline_table` says why), the input length's flag beside it.

    Examples
    --------
    >>> h = pd.DataFrame({"model": ["m"], "input tokens": [512.0], "output tokens": [64.0],
    ...                   "candidates": [2], "recommended": ["TP 1"],
    ...                   "predicted energy (J/request)": [1265.123456],
    ...                   "interval low (J)": [1001.5], "interval high (J)": [1525.25],
    ...                   "predicted J/output token": [19.77],
    ...                   "measured energy (J/request)": [float("nan")],
    ...                   "extrapolated": [False], "runner-up": ["TP 2"],
    ...                   "runner-up costs (%)": [15.0]})
    >>> row = headline_numbers(h).iloc[0]
    >>> float(row["predicted J/request"]), float(row["90% interval upper (J)"])
    (1265.123456, 1525.25)
    """
    keep = [c for c in ("model", "gpu", "workload") if c in h.columns]
    out = h[keep].copy()
    out["input_tokens"] = h["input tokens"].to_numpy(dtype=float)
    out["input_tokens_assumed"] = (h["input tokens assumed"].to_numpy(dtype=bool)
                                   if "input tokens assumed" in h else False)
    out["output_tokens"] = h["output tokens"].to_numpy(dtype=float)
    out["configurations"] = h["candidates"]
    out["recommended"] = h["recommended"]
    for name, col in (("predicted J/request", "predicted energy (J/request)"),
                      ("90% interval lower (J)", "interval low (J)"),
                      ("90% interval upper (J)", "interval high (J)"),
                      ("predicted J/output token", "predicted J/output token"),
                      ("measured J/request", "measured energy (J/request)")):
        out[name] = h[col].to_numpy(dtype=float)
    out["next best"] = h["runner-up"]
    out["next best costs more (%)"] = h["runner-up costs (%)"].to_numpy(dtype=float)
    out["extrapolated"] = h["extrapolated"].to_numpy(dtype=bool)
    return out


#: The headline's names for the lines of its accuracy table.
_ROLES = {"the model": "{} (this report's model)", "best ensemble": "best ensemble: {}",
          "rule of thumb": "rule of thumb: fewest GPUs per request in flight, fits nothing",
          "noise ceiling": "ceiling: the measured energy with 2% noise"}


def accuracy_table(acc: dict) -> pd.DataFrame:
    """The headline's accuracy lines (:func:`~energylens.report.comparison.with_main`) as a
    table: MAPE, Top-1 and regret (in %) of the model, the best ensemble, the rule of thumb
    and the 2%-noise ceiling; Top-1 and regret left out where no line has them."""
    rows = [{"compared": _ROLES[role].format(name), "MAPE (%)": m.get("mape", np.nan),
             "Top-1": m.get("top1", np.nan), "regret (%)": 100 * m.get("regret", np.nan)}
            for role, name, m in acc.get("lines", [])]
    out = pd.DataFrame(rows, columns=["compared", "MAPE (%)", "Top-1", "regret (%)"])
    if out["Top-1"].isna().all():
        out = out.drop(columns=["Top-1", "regret (%)"])
    return out


def _accuracy_text(a) -> str:
    cmp = a.comparison
    if isinstance(cmp, str):
        return f"<p>Held-out accuracy was not measured: {esc(sentence(cmp))}</p>"
    acc = cmp.accuracy
    if "mape" not in acc:
        return f"<p>Held-out accuracy: {esc(sentence(acc.get('reason', 'no result')))}</p>"
    t = accuracy_table(acc)
    text = (f"<p><b>Accuracy on held-out rows:</b> {esc(acc['main'])} predicts rows it was not "
            f"fitted on with a MAPE of <b>{acc['mape']:.1f}%</b> (trained on up to "
            f"{acc['n_train']} rows per group, mean over {cmp.seeds} random draws). Beside it, "
            "on the same draws: the best ensemble, the rule of thumb (it ranks configurations "
            "without predicting joules, so it has no MAPE) and the ceiling no model can be "
            "expected to pass (the measured energy with 2% noise, about the spread of repeated "
            "runs).")
    if "Top-1" in t.columns:
        text += (" Top-1 is the share of held-out scenarios (same " + _scenario(a) + ") whose "
                 "first choice is the measured optimum, regret the extra energy of that choice "
                 "over the optimum.")
    else:
        text += (" No held-out scenario had two configurations to choose between, so there is "
                 "no Top-1 or regret.")
    return (text + f"</p>{table(t)}<p>These are the rows of <code>comparison.csv</code> at "
            f"{acc['n_train']} training rows; section 4 has every model and size.</p>")


def headline(a) -> str:
    parts = ['<section class="headline"><h2>Headline</h2>']
    h = a.headline
    if isinstance(h, str):
        parts.append(f'<p class="warn">{esc(h)}</p>')
    elif h.empty:
        parts.append(f"<p>No scenario of this table (same {_scenario(a)}) "
                     "has two or more measured configurations: there is nothing to choose "
                     "between.</p>")
    else:
        parts.append(f"<p>For each scenario (the rows that serve the same requests: same "
                     f"{_scenario(a)}), the measured configuration with the "
                     "lowest predicted energy per output token, with its predicted energy per "
                     "request and 90% prediction interval. Lengths measured per run stay each "
                     "configuration's own.</p>")
        parts.append(table(headline_table(h), max_rows=12, csv="headline.csv", what="scenarios"))
    parts.append(_accuracy_text(a))
    if isinstance(a.next, pd.DataFrame) and len(a.next):
        parts.append(f"<p><b>What to measure next</b> ({esc(a.next_note)}): the configurations "
                     "most likely to be the optimum of their scenario, given the model's "
                     "uncertainty.</p>")
        parts.append(table(shown_inputs(a.next), max_rows=5, csv="next_measurements.csv"))
    else:
        parts.append(f"<p><b>What to measure next:</b> "
                     f"{esc(sentence(a.next_note or 'no suggestion'))}</p>")
    parts.append(_assumed_note(h, a.next))
    return "".join(parts) + "</section>"


def data_section(a) -> str:
    synthetic = (' <span class="warn">These rows come from the energylens simulator: synthetic, '
                 "not measurement.</span>" if a.synthetic else "")
    return (f"<h2>1. The profiling table</h2><p>Source: <code>{esc(a.source)}</code>.{synthetic}"
            f"</p>{table(a.summary)}" + _assumed_note(a.data))


def fit_section(a) -> str:
    pv = a.parameters
    fits = a.fits
    failed = ~fits["fitted"].astype(bool) if "fitted" in fits.columns else None
    if is_hierarchical(a.model):
        what = (f"<p>{esc(type(a.model).__name__)}: one form for every group of the table, each "
                "group's parameters partially pooled toward the population values below. Per "
                "group, the rows it was fitted on and its mean shrinkage (1: its parameters are "
                "borrowed from the other groups, 0: fitted on its own rows):</p>")
    else:
        what = (f"<p>{esc(type(a.model).__name__)} over the table"
                + (f", one model per {esc(' and '.join(a.by))} group" if a.by else "")
                + ". In-sample statistics per group (greyed: not fitted, with the reason):</p>")
    if a.main_why:
        what = f"<p>{esc(sentence(a.main_why))}</p>" + what
    parts = ["<h2>2. The fitted model</h2>", what,
             table(fits, csv="fit_groups.csv", greyed=failed, what="groups"),
             '<div class="grid">', figures.parity(a), figures.components(a), "</div>"]
    if not pv.table.empty:
        parts.append(f"<h3>Parameters of {esc(pv.title)}</h3><p>Shown: {esc(pv.why)}. Greyed rows "
                     "are parameters the data cannot determine (fixed, at a bound, or with a "
                     "standard error above their value); the note says which. Every group's "
                     "parameters are in <code>parameters.csv</code>.</p>")
        shown = pv.table.drop(columns="determined")
        parts.append(table(shown, greyed=~pv.table["determined"].astype(bool)))
        if pv.report:
            parts.append(f"<pre>{esc(pv.report)}</pre>")
    return "".join(parts)


def discovery_section(a) -> str:
    res = a.discovery
    head = "<h2>3. Discovered structure</h2>"
    if isinstance(res, str):
        return head + f'<p class="warn">{esc(res or "Discovery did not run.")}</p>'
    eq = res.equations_
    shown = eq[[c for c in ("complexity", "loss", "score") if c in eq.columns]].copy()
    shown["equation"] = [short(e) for e in eq["sympy"]]
    return (head + f"<p>Symbolic regression (engine <code>{esc(getattr(res, 'engine_', 'terms'))}"
            f"</code>) over the rows of {esc(a.parameters.title)}. Selected formula: "
            f"<code>{esc(short(res.sympy()))}</code> (constants to four significant digits "
            'here; in full in <code>discovery.csv</code>).</p><div class="grid">'
            + figures.discovery(res, shown) + table(shown, what="formulas", csv="discovery.csv")
            + "</div>")


def comparison_section(a) -> str:
    cmp = a.comparison
    head = "<h2>4. Accuracy against baselines</h2>"
    if isinstance(cmp, str):
        return head + f'<p class="warn">{esc(cmp or "The comparison did not run.")}</p>'
    s = cmp.summary
    cols = [c for c in ("model", "n_train", "mape", "median_ape", "top1", "random_top1", "regret",
                        "fit_failed", "failure_reason") if c in s.columns]
    shown = s[cols].rename(columns={"mape": "MAPE (%)", "median_ape": "median APE (%)",
                                    "top1": "Top-1", "random_top1": "Top-1 of a random pick",
                                    "fit_failed": "share of draws failed",
                                    "failure_reason": "why it failed"})
    failed = s["fit_failed"].fillna(0).to_numpy() > 0 if "fit_failed" in s else None
    return (head + f"<p>Each model is trained on n random rows per group and tested on the rest, "
            f"over {cmp.seeds} random draws (seeds); closed forms are fitted per group, ensembles "
            "on the pooled table. A model that fails on a draw is counted in 'share of draws "
            "failed' with the first reason; its metrics average the draws that worked (a dash "
            "where none did). Top-1 and regret are over held-out scenarios (same "
            f"{_scenario(a)}) with two or more configurations.</p>"
            + table(shown, csv="comparison.csv", greyed=failed, what="rows")
            + '<div class="grid">' + figures.efficiency(cmp, "mape")
            + figures.efficiency(cmp, "top1") + "</div>")


def best_section(a) -> str:
    b = a.best
    head = "<h2>5. Best configurations per scenario</h2>"
    if isinstance(b, str):
        return head + f'<p class="warn">{esc(b)}</p>'
    if b.empty:
        return head + (f"<p>No scenario (same {_scenario(a)}) has two or more "
                       "measured configurations.</p>")
    hit = float(np.mean(b["regret (%)"] <= 1e-9))
    return (head + f"<p>In-sample check over {len(b)} scenarios (same "
            f"{_scenario(a)}): the model's first choice among the measured configurations is "
            f"the measured optimum in {100 * hit:.0f}% of them; median regret "
            f"{b['regret (%)'].median():.2f}% (energy per output token over the best "
            "measured).</p>" + table(shown_inputs(b), max_rows=20, csv="best_configurations.csv",
                                     what="scenarios") + _assumed_note(b))


def front_section(a) -> str:
    f = a.front
    head = "<h2>6. Energy and latency</h2>"
    if isinstance(f, str):
        return head + f'<p class="warn">{esc(f)}</p>'
    if f is None:
        return head + ("<p>The table records no latency for three or more configurations of one "
                       "scenario: no energy-latency front to draw.</p>")
    what = (f"<p>Latency here is the {esc(f['quantity'])}, column <code>{esc(f['x'])}</code>"
            + ("; the table records no request latency, and the limit applies to the time per "
               "output token" if f["x"] == "tpot_s" else "")
            + ". The configurations are in <code>energy_latency.csv</code>.</p>")
    if f["chosen"] is None:
        what += (f'<p class="warn">None of the {len(f["table"])} configurations meets the '
                 f"{esc(f['short'])} limit of {f['limit']:.3g} s: the fastest takes "
                 f"{f['fastest']:.3g} s. No configuration is chosen.</p>")
    shown = f["table"] if "input_tokens" in f["scenario"] else None  # the caption names it
    return head + what + figures.front(f) + _assumed_note(shown)


def sweet_section(a) -> str:
    head = "<h2>7. Input/output sweet spots</h2>"
    if a.sweet_table.empty:
        return head + ("<p>No group of this table varies both input and output length enough "
                       "(three values each, eight rows) to fit the sweet-spot model.</p>")
    more = (f" {len(a.sweet)} of {a.sweet_groups} length sweeps are fitted here."
            if a.sweet_groups > len(a.sweet) else "")
    return (head + "<p>SweetSpot model per length sweep (every setting but the lengths fixed). "
            "'optimal output' is the closed-form optimum at the input length shown, the point "
            "the plot marks, with its 90% interval and the efficiency there. 'status' says what "
            "kind of optimum it is: one the data determine; one they do not (the decode cost "
            "growing with the answer is within two standard errors of zero: the point estimate, "
            "with an interval that may be unbounded); 'longer is better' (no interior optimum: "
            "the fitted efficiency keeps rising with longer answers; the efficiency shown is the "
            "value it approaches); 'shorter is better' (no optimum of one token or more). An "
            f"optimum outside the measured output lengths is an extrapolation and says so.{more}</p>"
            + '<div class="grid">' + "".join(figures.sweet_spot(s) for s in a.sweet[:2]) + "</div>"
            + table(a.sweet_table, csv="sweet_spots.csv", what="length sweeps"))


def warnings_section(a) -> str:
    if not a.warnings:
        return ""
    kinds: dict[str, dict] = {}
    for cat, msg, group in a.warnings:
        k = kinds.setdefault(cat, {"n": 0, "groups": set(), "first": msg})
        k["n"] += 1
        if group:
            k["groups"].add(group)
    rows = [{"warning": cat, "times": k["n"], "groups": len(k["groups"]) or "\u2013",
             "first message": k["first"][:300]} for cat, k in kinds.items()]
    return ("<h2>8. Warnings</h2><p>Each kind once, with how often it was raised and in how "
            "many groups; the full list is in <code>warnings.csv</code>.</p>"
            + table(pd.DataFrame(rows)))


SECTIONS = (headline, data_section, fit_section, discovery_section, comparison_section,
            best_section, front_section, sweet_section, warnings_section)
