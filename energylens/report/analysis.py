"""The report's analysis, as plain data (DataFrames, dicts), before any HTML.

:func:`analyse` runs each step in turn, logs it with the time spent so far (through the
``energylens`` logger) and shows a progress bar with an ETA on the steps that loop (the
comparison over seeds, the sweet-spot fits), silent when standard error is not a terminal.
Every warning a step raises is kept with the step, and a step that cannot run on this table
(too few rows to hold out, no length sweep) leaves the reason in its place instead.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.progress import logger
from ..exceptions import EnergyLensError
from . import choices, comparison, fitting, lengths
from .choices import ASSUMED, inputs_assumed

__all__ = ["Analysis", "analyse", "summary_table"]


@dataclass
class Analysis:
    """Everything the report shows, as data. A string in place of a result says why that
    part could not be computed."""

    source: str
    data: pd.DataFrame
    summary: pd.DataFrame
    synthetic: bool
    by: list[str]
    model: object
    fits: pd.DataFrame
    parameters: fitting.ParameterView
    headline: pd.DataFrame | str = ""
    next: pd.DataFrame | str = ""
    next_note: str = ""
    comparison: comparison.Comparison | str = ""
    discovery: object = ""
    best: pd.DataFrame | str = ""
    front: dict | str | None = None
    sweet: list = field(default_factory=list)
    sweet_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    sweet_groups: int = 0
    warnings: list[tuple[str, str, str | None]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    main_why: str = ""
    #: The columns of a scenario, shared by every section (:func:`~energylens.report.choices.scenario_columns`).
    scenario: list[str] = field(default_factory=list)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row describing the table: sizes and ranges in words and units (input lengths
    marked where a reader assumed them)."""
    def span(c, fmt="{:g}"):
        return f"{fmt.format(df[c].min())} to {fmt.format(df[c].max())}" if c in df else "\u2013"

    assumed = int(inputs_assumed(df).sum())
    inputs = span("input_tokens") + ("" if not assumed else f" {ASSUMED}" if assumed == len(df)
                                     else f" (assumed in {assumed} of {len(df)} rows)")

    return pd.DataFrame({
        "rows": [len(df)], "models": [df["model"].nunique()], "GPUs": [df["gpu"].nunique()],
        "TP": [", ".join(map(str, sorted(df["tp"].unique())))],
        "PP": [", ".join(map(str, sorted(df["pp"].unique())))],
        "batch size": [span("batch_size")], "input tokens": [inputs],
        "output tokens": [span("output_tokens", "{:.4g}")],
        "energy per request (J)": [span("energy_j", "{:.3g}")],
        "energy per output token (J/token)": [span("energy_per_output_token_j", "{:.3g}")],
    })


class _Steps:
    """Runs steps with a log line, the time spent, their warnings and, for optional steps,
    the reason they could not run."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.warnings: list[tuple[str, str, str | None]] = []

    def run(self, name: str, fn, *args, optional: bool = True, **kwargs):
        logger.info(f"[{time.perf_counter() - self.t0:5.1f}s] {name}")
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn(*args, **kwargs)
            except (EnergyLensError, ValueError, np.linalg.LinAlgError) as exc:
                if not optional:
                    raise
                out = f"{name} could not run on this table: {type(exc).__name__}: {exc}"
                logger.warning(out)
        self.timings[name] = time.perf_counter() - t
        self.warnings += [(w.category.__name__, str(w.message), None) for w in caught]
        return out


def _fit(estimator, df: pd.DataFrame, steps: _Steps):
    from ..models.grouped import fit_listing_groups, group_warnings

    model = fit_listing_groups(estimator, df)
    steps.warnings += group_warnings(model)
    return model


def _rows_of(df: pd.DataFrame, by: list[str], key: tuple) -> pd.DataFrame:
    if not by or not key:
        return df
    mask = np.ones(len(df), dtype=bool)
    for c, v in zip(by, key):
        mask &= (df[c] == v).to_numpy()
    return df[mask]


def _discover(rows: pd.DataFrame):
    from ..discovery import TermSearch, discover

    if len(rows) < 3:
        raise ValueError(f"the group has {len(rows)} rows; discovery needs at least 3")
    return discover(rows, target="energy_j", engine=TermSearch())


def analyse(df: pd.DataFrame, *, estimator=None, source: str = "<table>", seeds: int | None = None,
            quick: bool = False, max_latency_s: float | None = None, n_jobs: int | None = None,
            show_progress: bool | None = None) -> Analysis:
    """Run the report's analysis on a canonical profiling table.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table (:func:`energylens.read_profiles`).
    estimator : estimator, optional
        Unfitted model behind the headline and the parameter table. By default the closed
        form with the lowest held-out MAPE in the comparison: the hierarchical model or one
        EnergyLens model per model and GPU (:func:`~energylens.report.fitting.choose_main`).
    source : str
        Where the table came from.
    seeds : int, optional
        Random draws of the comparison (default 3, or 2 with ``quick``).
    quick : bool
        Smaller comparison (10 and 20 rows per group, smaller ensembles).
    max_latency_s : float, optional
        Latency limit of the energy-latency choice, in seconds (default: twice the fastest
        measured). It bounds the request latency, or the time per output token where the
        table records no request latency (ML.ENERGY's tables); the report names which.
    n_jobs : int, optional
        joblib workers over the comparison's seeds.
    show_progress : bool, optional
        Progress bars: True, False, or None for only on a terminal.

    Returns
    -------
    Analysis

    Examples
    --------
    >>> import energylens  # doctest: +SKIP
    >>> a = analyse(energylens.read_profiles("data/demo_profiles.csv"), quick=True)  # doctest: +SKIP
    >>> a.headline.iloc[0]["recommended"]  # doctest: +SKIP
    """
    if len(df) < 3:
        raise ValueError(f"The report needs at least 3 rows; the table has {len(df)}.")
    df = df.reset_index(drop=True)
    seeds = comparison.DEFAULT_SEEDS[bool(quick)] if seeds is None else int(seeds)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}.")
    steps, by = _Steps(), fitting.group_columns(df)
    comp = steps.run(f"comparing against baselines ({seeds} seeds)", comparison.compare,
                     df, by, seeds=seeds, quick=quick, source=source, n_jobs=n_jobs,
                     show_progress=show_progress)
    est, main, why = (estimator, type(estimator).__name__, "the model asked for") \
        if estimator is not None else fitting.choose_main(df, comp)
    model = steps.run(f"fitting {type(est).__name__} per {', '.join(by) or 'table'}", _fit, est,
                      df, steps, optional=False)
    params = fitting.parameter_view(model)
    a = Analysis(source, df, summary_table(df),
                 bool("source" in df and (df["source"] == "simulator").all()), by, model,
                 fitting.fit_table(model), params)
    a.comparison, a.main_why = comparison.with_main(comp, main), why
    a.scenario = choices.scenario_columns(df)
    a.headline = steps.run("recommending a configuration per scenario", choices.recommendations,
                           model, df)
    nxt = steps.run("choosing what to measure next", choices.next_measurements, model, df, by)
    a.next, a.next_note = nxt if isinstance(nxt, tuple) else (pd.DataFrame(), nxt)
    a.discovery = steps.run("discovering formula structure (term search)", _discover,
                            _rows_of(df, by, params.key))
    a.best = steps.run("checking the choice per scenario", choices.best_per_scenario, model, df)
    a.front = steps.run("energy-latency front", choices.energy_latency_front, df, max_latency_s)
    ss = steps.run("fitting sweet-spot curves", lengths.sweet_spots, df, show_progress=show_progress)
    if isinstance(ss, tuple):
        a.sweet, a.sweet_table, a.sweet_groups = ss
    a.warnings, a.timings = steps.warnings, steps.timings
    a.settings = {"seeds": seeds, "quick": bool(quick), "max_latency_s": max_latency_s,
                  "show_progress": show_progress}
    return a
