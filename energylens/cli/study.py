"""Commands that study a table: ``discover``, ``compare`` and ``report``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from .files import (
    BadInput,
    Outputs,
    by_columns,
    check_by,
    check_report_output,
    read_table,
    write_bytes,
    write_table,
    writing,
)
from .messages import log

__all__ = ["cmd_discover", "cmd_compare", "cmd_report", "MIN_ROWS"]

#: Fewest rows each command can work with.
MIN_ROWS = {"discover": 3, "compare": 6, "report": 3}


def _enough(df, command: str, table: str) -> None:
    need = MIN_ROWS[command]
    if len(df) < need:
        raise BadInput(f"'{table}' has {len(df)} row{'s' * (len(df) != 1)}; {command} needs at "
                       f"least {need}.")


def cmd_discover(args, summary) -> int:
    """Symbolic regression: a front of formulas, one selected (or, with ``--derive``, a
    derived closed form written as a model file)."""
    from ..discovery import SymbolicEnergyRegressor, resolve_engine

    if args.derive:
        return _derive(args)
    out = Outputs([args.table], args.force).file(args.output)
    df = read_table(args)
    _enough(df, "discover", args.table)
    if args.target not in df.columns:
        raise BadInput(f"--target {args.target!r} is not a column of '{args.table}'; columns are "
                       f"{list(map(str, df.columns))}.")
    engine = resolve_engine(args.engine)
    if "random_state" in engine.get_params():
        engine.set_params(random_state=args.seed)
    log.info(f"discovering the structure of {args.target} over {len(df)} rows (engine "
             f"{engine.name}) ...")
    reg = SymbolicEnergyRegressor(target=args.target, features=args.features or None,
                                  engine=engine, model_selection=args.selection,
                                  progress=False if args.quiet else None)
    res = reg.fit(df).result_
    log.info(f"engine {res.engine_} found {len(res.equations_)} formulas")
    if args.format == "latex":
        text = res.to_latex()
        if out is not None:
            write_bytes(out, text)
        else:
            sys.stdout.write(text)
    else:
        # Full precision in the file; the line below shows constants to 4 significant digits.
        write_table(res.table(digits=None), str(out) if out else None, args.format)
    log.info(res.summary())
    return 0


def _derive(args) -> int:
    """``discover --derive``: :func:`~energylens.derive_model`, saved as a model file."""
    from ..discovery import derive_model, resolve_engine

    if not args.output:
        raise BadInput("discover --derive writes a model file: give one with -o, e.g. -o model.json.")
    if args.features or args.resamples < 1:
        raise BadInput("--derive searches its own library of terms (no --features) and needs "
                       "--resamples of at least 1, e.g. --resamples 20.")
    outs = Outputs([args.table], args.force)
    out = (outs.folder(args.output, kind="grouped") if args.per_group
           else outs.file(args.output, kind="energylens.model"))
    df = read_table(args)
    _enough(df, "discover", args.table)
    engine = None if args.engine in ("auto", "terms") else resolve_engine(args.engine)
    if engine is not None and "random_state" in engine.get_params():
        engine.set_params(random_state=args.seed)
    by = by_columns(args.by)
    check_by(by, df, args.table)
    log.info(f"deriving a closed form of {args.target} over {len(df)} rows ({args.resamples} "
             f"bootstrap resamples, groups {by}) ...")
    model = derive_model(df, args.target, engine=engine, by=by, n_resamples=args.resamples,
                         random_state=args.seed, progress=False if args.quiet else None)
    print(model.derivation_.summary())
    print(f"{model.equation()}\n  where {model.legend()}")
    if args.per_group:
        from ..models import GroupedModel

        grouped = GroupedModel(model, by=by, min_rows=2, fallback="pooled").fit(df)
        with writing(out):
            grouped.save(out, force=args.force)
        cols = [c for c in [*grouped.by_, "n_rows", "fitted", "mape_pct", "error"]
                if c in grouped.groups_.columns]
        print(grouped.groups_[cols].to_string(index=False))
        log.info(f"wrote {len(grouped.models_)} group models and the pooled fallback to {out}/")
        return 0
    with writing(out):
        model.save(out, force=args.force)
    print(model.fit_report())
    log.info(f"wrote {out}")
    return 0


def cmd_compare(args, summary) -> int:
    """Every model of the comparison list, by training-set size, over seeds."""
    from ..evaluation import comparison_models, sample_efficiency
    from ..report.comparison import summarise

    out = Outputs([args.table], args.force).file(args.output)
    df = read_table(args).reset_index(drop=True)
    _enough(df, "compare", args.table)
    if args.seeds < 1 or not args.n_train or min(args.n_train) < 1:
        raise BadInput("--seeds and --n-train take positive integers (e.g. --seeds 3 "
                       "--n-train 10 20).")
    by = [c for c in ("model", "gpu") if c in df.columns]
    models = comparison_models(by)
    log.info(f"comparing {len(models)} models ({', '.join(models)}) over n_train="
             f"{args.n_train} rows per group, {args.seeds} seeds ...")
    res = sample_efficiency(models, df, n_train=args.n_train, seeds=args.seeds, group=by,
                            dataset=Path(args.table).stem, errors=True, n_jobs=args.jobs,
                            show_progress=False if args.quiet else None)
    if res.empty:
        raise BadInput(f"'{args.table}' is too small for n_train={args.n_train}: no group keeps "
                       "two rows to test.")
    table = summarise(res)
    failed = table[table["failure_reason"] != ""]
    for model, rows in failed.groupby("model", sort=False):
        sizes = ", ".join(f"{n} ({f:.0%} of draws)" for n, f in zip(rows["n_train"], rows["fit_failed"]))
        log.warning(f"{model} failed at n_train {sizes}; first reason: "
                    f"{rows['failure_reason'].iloc[0]}")
    write_table(res if args.long else table, str(out) if out else None, args.format)
    return 0


def report_jobs(jobs: int | None) -> int:
    """Worker processes of a report's comparison: as asked, else the cores (at most 4: the
    comparison has a few dozen fits, and each worker costs a second to start).

    >>> report_jobs(1), report_jobs(3), 1 <= report_jobs(None) <= 4
    (1, 3, True)
    """
    from ..core.threads import usable_cores

    return jobs if jobs is not None else min(4, usable_cores())


def _read_recorded(args, summary):
    """``(table, warnings)``: the table of ``args.table`` and the warnings reading it raised,
    as ``(category, message, group)`` (group None), for the report to show with its own.
    They go to ``summary`` too, even where reading fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = read_table(args)
        finally:
            summary.add_records(caught)
    return df, [(w.category.__name__, str(w.message), None) for w in caught]


def cmd_report(args, summary) -> int:
    """The HTML report of a table (a folder with index.html and the CSV tables); its
    warnings are those raised reading the table, then those of the analysis."""
    from ..report import REPORT_FILES, analyse, write_analysis

    out = Outputs([args.table], args.force).folder(args.output, kind="report",
                                                    writes=REPORT_FILES)
    df, read_warnings = _read_recorded(args, summary)
    _enough(df, "report", args.table)
    a = analyse(df, source=str(args.table), seeds=args.seeds, quick=args.quick,
                max_latency_s=args.max_latency, n_jobs=report_jobs(args.jobs),
                show_progress=False if args.quiet else None)
    for category, message, group in a.warnings:
        summary.add(category, message, group)
    a.warnings = read_warnings + a.warnings
    check_report_output(out, "-o/--output", args.force)  # the folder may have changed meanwhile
    with writing(out):
        index = write_analysis(a, out, title=args.title, force=args.force)
    print(str(index))
    return 0
