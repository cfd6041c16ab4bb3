"""The HTML report: fit, discover, compare and select on one profiling table.

:func:`write_report` runs the whole product on a table and writes one self-contained
``index.html`` (plots embedded as PNG, no external resources) plus the tables behind it as
CSV files, so every number in the report can be checked.
"""

from __future__ import annotations

import base64
import html
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__

__all__ = ["write_report", "build_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4rem 0}
.note{color:#555;font-size:.9rem}.warn{color:#8a4b00}
figure{margin:0}figcaption{font-size:.85rem;color:#555}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
code{background:#f6f6f6;padding:0 .2rem}
pre{white-space:pre-wrap;font-size:.8rem;background:#fafafa;padding:.5rem}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(ax, caption: str) -> str:
    data = _png(ax.figure)
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(df: pd.DataFrame, *, float_format: str = "{:.4g}", max_rows: int = 60) -> str:
    df = df.head(max_rows)
    head = "".join(f'<th class="l">{html.escape(str(c))}</th>' if df[c].dtype == object
                   else f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if isinstance(v, (float, np.floating)):
                text = "" if not np.isfinite(v) else float_format.format(v)
                cells.append(f"<td>{text}</td>")
            elif isinstance(v, (bool, np.bool_)):
                cells.append(f"<td>{'yes' if v else 'no'}</td>")
            elif isinstance(v, (int, np.integer)):
                cells.append(f"<td>{v}</td>")
            else:
                cells.append(f'<td class="l">{html.escape(str(v))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _short(expr, digits: int = 4) -> str:
    """A sympy expression with its constants rounded for display."""
    import sympy

    return str(expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)}))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


def _group_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in ("source", "model", "gpu") if c in df.columns and df[c].nunique() > 0]


def build_report(df: pd.DataFrame, *, title: str = "energylens report", source: str = "<table>",
                 progress: Callable[[str], None] | None = None, seeds: int = 5,
                 quick: bool = False) -> tuple[str, dict[str, pd.DataFrame]]:
    """Run the analysis and return ``(html, tables)``; see :func:`write_report`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from . import plot as elp
    from .discovery import discover
    from .evaluation.protocols import sample_efficiency
    from .models import EnergyLensModel, SweetSpotModel, WilkinsModel
    from .models.ensemble import GradientBoostingEnergyModel, RandomForestEnergyModel
    from .models.grouped import GroupedModel
    from .models.sweetspot import SETTINGS as SWEETSPOT_SETTINGS
    from .selection import pareto_front, select_config

    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    tables: dict[str, pd.DataFrame] = {}
    parts: list[str] = []
    by = [c for c in ("model", "gpu") if c in df.columns]

    # ---- data -------------------------------------------------------------------------------
    say("summarising the table")
    summary = pd.DataFrame({
        "rows": [len(df)], "models": [df["model"].nunique()], "GPUs": [df["gpu"].nunique()],
        "TP": [", ".join(map(str, sorted(df["tp"].unique())))],
        "PP": [", ".join(map(str, sorted(df["pp"].unique())))],
        "batch size": [f"{df.batch_size.min():g} to {df.batch_size.max():g}"],
        "input tokens": [f"{df.input_tokens.min():g} to {df.input_tokens.max():g}"],
        "output tokens": [f"{df.output_tokens.min():g} to {df.output_tokens.max():g}"],
        "energy per request (J)": [f"{df.energy_j.min():.3g} to {df.energy_j.max():.3g}"],
    })
    synthetic = "source" in df.columns and (df["source"] == "simulator").all()
    parts.append("<h2>1. The profiling table</h2>")
    parts.append(f"<p>Source: <code>{html.escape(source)}</code>." + (
        ' <span class="warn">These rows come from the energylens simulator: synthetic, not '
        "measurement.</span>" if synthetic else "") + "</p>")
    parts.append(_table(summary))

    # ---- fit ----------------------------------------------------------------------------------
    say(f"fitting the twelve-parameter model per {by} group")
    grouped, fit_warnings = _quiet(GroupedModel(EnergyLensModel(), by=by).fit, df)
    stats = grouped.groups_.copy()
    keep = [c for c in [*by, "n_rows", "fitted", "mape_pct", "n_free", "rank", "batch_rule", "aic",
                        "error"] if c in stats.columns]
    tables["fit_groups"] = stats[keep]
    parts.append("<h2>2. The fitted model</h2>")
    parts.append("<p>One EnergyLens model (twelve parameters; prefill, decode and static terms; "
                 "separate tensor- and pipeline-parallel overheads) per "
                 f"{' and '.join(by)} group. In-sample MAPE per group:</p>")
    parts.append(_table(stats[keep]))
    fitted_rows = df[df.set_index(by).index.isin(list(grouped.models_))] if by else df
    pred = grouped.predict(fitted_rows)
    parts.append('<div class="grid">')
    parts.append(_img(elp.parity(fitted_rows["energy_j"], pred, hue=fitted_rows[by[-1]] if by else None),
                      "In-sample parity of the per-group fits (log axes, +-10% band)"))
    biggest = max(grouped.models_, key=lambda k: len(df[(df[by] == pd.Series(k, index=by)).all(axis=1)]))
    m_big = grouped.models_[biggest]
    sel = df[(df[by] == pd.Series(biggest, index=by)).all(axis=1)]
    cand = sel.sort_values("energy_j").head(12)
    parts.append(_img(elp.components(m_big, cand),
                      f"Prefill, decode and static energy per request, {' / '.join(map(str, biggest))}"))
    parts.append("</div>")
    P = m_big.params_.reset_index()
    P["note"] = [" ".join(filter(None, (n, "at its bound" if b else "")))
                 for n, b in zip(P["note"], P["at_bound"])]
    P = P[["parameter", "value", "stderr", "unit", "meaning", "note"]]
    tables["parameters"] = grouped.params_
    parts.append(f"<h3>Parameters for {html.escape(' / '.join(map(str, biggest)))} "
                 f"({len(sel)} rows)</h3>")
    parts.append(_table(P))
    parts.append(f"<pre>{html.escape(m_big.fit_report())}</pre>")
    if fit_warnings:
        parts.append('<p class="warn">Fit warnings: ' + html.escape("; ".join(sorted(set(fit_warnings))[:8]))
                     + "</p>")

    # ---- discovery ----------------------------------------------------------------------------
    say("discovering formula structure (deterministic term search)")
    disc, _ = _quiet(discover, sel, target="energy_j", engine="terms", seed=0)
    eq = disc.equations_.copy()
    eq["sympy"] = eq["sympy"].astype(str)
    tables["discovery"] = eq
    parts.append("<h2>3. Discovered structure</h2>")
    parts.append(f"<p>Symbolic regression (engine <code>{html.escape(str(getattr(disc, 'engine_', 'terms')))}"
                 f"</code>) over the {len(sel)} rows of {html.escape(' / '.join(map(str, biggest)))}. "
                 f"Selected formula: <code>{html.escape(_short(disc.sympy()))}</code> (constants "
                 "to four significant digits here; in full in discovery.csv)</p>")
    shown = eq[[c for c in ("complexity", "loss", "score") if c in eq.columns]].copy()
    shown["equation"] = [_short(e) for e in disc.equations_["sympy"]]
    parts.append('<div class="grid">')
    sel_idx = getattr(disc, "best_index_", None)
    parts.append(_img(elp.discovery_front(shown, selected=sel_idx),
                      "Pareto front of discovered formulas (complexity against loss)"))
    parts.append(_table(shown))
    parts.append("</div>")

    # ---- comparison ---------------------------------------------------------------------------
    n_train = [n for n in ((10, 20) if quick else (10, 20, 50)) if n < 0.8 * len(df)]
    if n_train:
        say(f"comparing against baselines: n_train={n_train}, {seeds} seeds")
        models = {
            "EnergyLens": GroupedModel(EnergyLensModel(), by=by),
            "Wilkins": GroupedModel(WilkinsModel(), by=by),
            "RandomForest": RandomForestEnergyModel(),
            "HistGradientBoosting": GradientBoostingEnergyModel(),
        }
        scenario = [c for c in ("model", "gpu", "workload") if c in df.columns]
        res, _ = _quiet(sample_efficiency, models, df, n_train=n_train, seeds=seeds,
                        scenario=scenario, dataset=Path(source).stem, group=by)
        tables["comparison_long"] = res
        comp = res.groupby(["model", "n_train", "metric"])["value"].mean().unstack("metric").reset_index()
        tables["comparison"] = comp
        parts.append("<h2>4. Accuracy against baselines</h2>")
        parts.append(f"<p>Train on n random rows, test on the rest, {seeds} seeds; closed forms "
                     "are fitted per group, ensembles on the pooled table. MAPE and median APE in "
                     "percent; Top-1 and pairwise accuracy as fractions of scenarios; regret as a "
                     "fraction over the best measured energy.</p>")
        parts.append(_table(comp))
        parts.append('<div class="grid">')
        for metric in ("mape", "top1"):
            if metric in set(res["metric"]):
                parts.append(_img(elp.sample_efficiency(res, metric=metric),
                                  f"Sample efficiency: {metric} by training-set size"))
        parts.append("</div>")

    # ---- selection ----------------------------------------------------------------------------
    say("ranking configurations per scenario")
    scen_cols = [c for c in ("model", "gpu", "workload", "input_tokens", "output_tokens")
                 if c in df.columns]
    best_rows = []
    for key, cand_s in fitted_rows.groupby(scen_cols, sort=True):
        if len(cand_s) < 2:
            continue
        ranked = select_config(grouped, cand_s)
        top = ranked.iloc[0]
        truth = cand_s.loc[cand_s["energy_j"].idxmin()]
        row = dict(zip(scen_cols, key if isinstance(key, tuple) else (key,)))
        row.update({"candidates": len(cand_s), "chosen tp": top["tp"], "chosen pp": top["pp"],
                    "chosen batch": top["batch_size"],
                    "predicted energy (J)": top["energy_j"],
                    "measured energy of choice (J)": cand_s.loc[top.name, "energy_j"]
                    if top.name in cand_s.index else np.nan,
                    "best measured (J)": truth["energy_j"]})
        row["regret (%)"] = 100 * (row["measured energy of choice (J)"] / row["best measured (J)"] - 1)
        best_rows.append(row)
    best = pd.DataFrame(best_rows)
    tables["best_configurations"] = best
    parts.append("<h2>5. Best configurations per scenario</h2>")
    if len(best):
        hit = float(np.mean(best["regret (%)"] <= 1e-9))
        parts.append(f"<p>{len(best)} scenarios; the model's pick is the measured optimum in "
                     f"{100 * hit:.0f}% of them (in-sample), median regret "
                     f"{best['regret (%)'].median():.2f}%.</p>")
        parts.append(_table(best, max_rows=40))
    if "latency_s" in df.columns and df["latency_s"].notna().all():
        # One scenario (fixed workload and lengths): across lengths energy and latency both
        # grow with the request, and a front over them would compare different requests.
        scen_cols = [c for c in ("workload", "input_tokens", "output_tokens") if c in sel.columns]
        sizes = sel.groupby(scen_cols, dropna=False).size()
        if len(sizes) and sizes.max() >= 3:
            key = sizes.idxmax()
            key = key if isinstance(key, tuple) else (key,)
            one = sel.groupby(scen_cols, dropna=False).get_group(key)
            pf = pareto_front(one, x="latency_s", y="energy_j")
            chosen = one["energy_j"].idxmin()
            what = ", ".join(f"{c} {v:g}" if isinstance(v, (int, float, np.number)) else f"{c} {v}"
                             for c, v in zip(scen_cols, key))
            parts.append(_img(elp.pareto(one, x="latency_s", y="energy_j", chosen=chosen,
                                         front=pf["pareto"]),
                              f"Energy against latency, {' / '.join(map(str, biggest))}, {what}: "
                              f"{len(one)} measured configurations, the front and the least-energy "
                              "one"))

    # ---- sweet spot ---------------------------------------------------------------------------
    say("fitting sweet-spot curves")
    parts.append("<h2>6. Input/output sweet spots</h2>")
    ss_rows, ss_imgs, ss_poor = [], [], []
    # Only the lengths may vary inside a group: the settings SweetSpotModel checks, the batch
    # kind and the request pool (which sets the running batch) are held fixed.
    group_cols = [c for c in (*SWEETSPOT_SETTINGS, "batch_kind", "n_requests") if c in df.columns]
    for key, g in df.groupby(group_cols, sort=True, dropna=False):
        if g["input_tokens"].nunique() < 3 or g["output_tokens"].nunique() < 3 or len(g) < 8:
            continue
        m, _ = _quiet(SweetSpotModel().fit, g)
        mape = m.fit_stats_["mape_pct"]
        if mape > m.poor_fit_mape:
            ss_poor.append(f"{' / '.join(map(str, key))} ({mape:.1f}%)")
        inputs = sorted(g["input_tokens"].unique())
        spot = m.sweet_spot(inputs, sorted(g["output_tokens"].unique()))
        ss_rows.append({**dict(zip(group_cols, key)), "rows": len(g), "MAPE (%)": mape,
                        "best input": spot["input_tokens"], "best output": spot["output_tokens"],
                        "tokens/J at best": spot["tokens_per_joule"],
                        "best/worst": spot["max_to_min_ratio"]})
        if len(ss_imgs) < 2:
            ss_imgs.append(_img(elp.sweetspot_curves(m, input_tokens=inputs[:: max(1, len(inputs) // 4)]),
                                "Energy per output token, " + " / ".join(map(str, key))))
        if len(ss_rows) >= 30:
            break
    if ss_rows:
        tables["sweet_spots"] = pd.DataFrame(ss_rows)
        parts.append('<div class="grid">' + "".join(ss_imgs) + "</div>")
        parts.append(_table(tables["sweet_spots"]))
        if ss_poor:
            parts.append(f'<p class="warn">Poor sweet-spot fits (in-sample MAPE above '
                         f'{SweetSpotModel().poor_fit_mape:g}%): {html.escape("; ".join(ss_poor))}. '
                         "Their optimal lengths are not to be trusted.</p>")
    else:
        parts.append("<p>No group of this table varies both input and output length enough "
                     "(three values each) to fit the sweet-spot model.</p>")

    elapsed = time.perf_counter() - t_start
    head = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"note\">energylens {__version__}; "
            f"{len(df)} rows; generated in {elapsed:.0f} s. Every table below is also written as CSV "
            "beside this file.</p>")
    return head + "".join(parts) + "</body></html>\n", tables


def write_report(df: pd.DataFrame, out_dir, *, title: str = "energylens report",
                 source: str = "<table>", progress: Callable[[str], None] | None = None,
                 seeds: int = 5, quick: bool = False) -> Path:
    """Write ``index.html`` and the CSV tables behind it into ``out_dir``; return the HTML path.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table (see :func:`energylens.read_profiles`).
    out_dir : path
        Directory to create or fill.
    title : str
        Title of the report.
    source : str
        Where the table came from (shown in the report).
    progress : callable, optional
        Called with a short message before each stage.
    seeds : int
        Seeds of the baseline comparison.
    quick : bool
        Smaller comparison (n_train 10 and 20).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text, tables = build_report(df, title=title, source=source, progress=progress, seeds=seeds,
                                quick=quick)
    for name, t in tables.items():
        t.to_csv(out / f"{name}.csv", index=False)
    path = out / "index.html"
    path.write_text(text, encoding="utf-8")
    if progress:
        progress(f"wrote {path}")
    return path
