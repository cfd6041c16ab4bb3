"""The ``energylens`` command line.

Subcommands: ``validate``, ``simulate``, ``discover``, ``fit``, ``predict``, ``select``,
``sweetspot``, ``compare`` and ``report``. Every one has ``--help``. Tables go to standard
output (or ``-o``) as CSV or JSON; progress goes to standard error.

Exit codes: 0 success; 2 bad input (the :class:`~energylens.SchemaError` message, or a bad
argument); 1 internal error.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .exceptions import EnergyLensError, InfeasibleError, ModelFileError, SchemaError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class _BadInput(Exception):
    """A command-line problem the user can fix (exit code 2)."""


# --------------------------------------------------------------------------- helpers
class Progress:
    """A one-line progress display on standard error (silent with ``--quiet``)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _parse_units(items: Sequence[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise _BadInput(f"--units expects COLUMN=UNIT (e.g. energy=kWh); got {item!r}.")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _read_table(args) -> pd.DataFrame:
    from .schema import read_profiles

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_profiles(args.table, units=_parse_units(getattr(args, "units", None)),
                           duplicates=getattr(args, "duplicates", "raise"))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return df


def _write_table(df: pd.DataFrame, out: str | None, fmt: str) -> None:
    if fmt == "json":
        text = df.to_json(orient="records", indent=2)
    else:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        text = buf.getvalue()
    if out:
        Path(out).write_text(text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="write the table here instead of standard output")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="table format (default: csv)")


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="profiling table: CSV, parquet or JSON lines")
    p.add_argument("--units", nargs="*", metavar="COLUMN=UNIT",
                   help="units of source columns, e.g. energy=kWh latency=ms")
    p.add_argument("--duplicates", choices=("raise", "mean", "keep"), default="raise",
                   help="rows repeating a configuration: raise (default), average or keep")


def _load_any_model(path: str):
    """A model file, or a folder written by ``fit --by`` (GroupedModel.save)."""
    from .models import load_model

    return load_model(Path(path))


# --------------------------------------------------------------------------- commands
def cmd_validate(args) -> int:
    df = _read_table(args)
    summary = {
        "table": str(args.table),
        "rows": int(len(df)),
        "columns": list(df.columns),
        "models": sorted(map(str, df["model"].unique())),
        "gpus": sorted(map(str, df["gpu"].unique())),
        "tp": sorted(int(v) for v in df["tp"].unique()),
        "pp": sorted(int(v) for v in df["pp"].unique()),
        "batch_size": [float(df["batch_size"].min()), float(df["batch_size"].max())],
        "input_tokens": [float(df["input_tokens"].min()), float(df["input_tokens"].max())],
        "output_tokens": [float(df["output_tokens"].min()), float(df["output_tokens"].max())],
        "energy_j": [float(df["energy_j"].min()), float(df["energy_j"].max())],
        "energy_per_output_token_j_median": float(df["energy_per_output_token_j"].median()),
        "has_phase_split": bool({"prefill_energy_j", "decode_energy_j"} <= set(df.columns)),
    }
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['table']}: valid profiling table, {summary['rows']} rows")
        for k in ("models", "gpus", "tp", "pp"):
            print(f"  {k:<14} {', '.join(map(str, summary[k]))}")
        for k in ("batch_size", "input_tokens", "output_tokens", "energy_j"):
            lo, hi = summary[k]
            print(f"  {k:<14} {lo:g} to {hi:g}")
        print(f"  energy per output token (median): {summary['energy_per_output_token_j_median']:.4g} J/token")
        print(f"  prefill/decode split: {'yes' if summary['has_phase_split'] else 'no'}")
    if args.output:
        _write_table(df, args.output, "csv")
    return EXIT_OK


def cmd_simulate(args) -> int:
    from .simulate import simulate_profiles

    kwargs = {"seed": args.seed, "noise": args.noise}
    if args.models:
        kwargs["models"] = args.models
    if args.gpus:
        kwargs["gpus"] = args.gpus
    if args.n_requests is not None:
        kwargs["n_requests"] = args.n_requests
    df = simulate_profiles(**kwargs)
    _write_table(df, args.output, args.format)
    print(f"simulated {len(df)} configurations (synthetic data)", file=sys.stderr)
    return EXIT_OK


def _model_from_args(args):
    from .models import EnergyLensModel, SweetSpotModel, WilkinsModel

    kind = args.model
    common = {"loss": args.loss}
    if kind == "energylens":
        return EnergyLensModel(batch_rule=args.batch_rule, size_covariate=args.size_covariate, **common)
    if kind == "sweetspot":
        return SweetSpotModel(**common)
    return WilkinsModel(**common)


def cmd_fit(args) -> int:
    from .models.grouped import GroupedModel

    progress = Progress(args.quiet)
    df = _read_table(args)
    model = _model_from_args(args)
    by = [c for c in (args.by.split(",") if args.by else []) if c]
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise _BadInput(f"--by names column(s) {missing} absent from {args.table}; columns are {list(df.columns)}.")
    out = Path(args.output)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if by:
            progress(f"fitting one {type(model).__name__} per group of {by} ...")
            g = GroupedModel(model, by=by, n_jobs=args.jobs).fit(df)
            g.save(out)
            entries = g.models_
            stats = g.groups_
            cols = [c for c in [*by, "n_rows", "fitted", "mape_pct", "n_free", "aic", "error"] if c in stats]
            print(stats[cols].to_string(index=False))
            progress(f"wrote {len(entries)} models to {out}/")
        else:
            progress(f"fitting {type(model).__name__} on {len(df)} rows ...")
            model.fit(df)
            model.save(out)
            print(model.fit_report())
            progress(f"wrote {out}")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return EXIT_OK


def cmd_predict(args) -> int:
    model = _load_any_model(args.model_file)
    cand = _read_candidates(args.candidates)
    pred = cand.copy()
    if hasattr(model, "predict_interval"):
        pi = model.predict_interval(cand, level=args.level)
        pred["energy_j"] = pi["energy_j"].to_numpy()
        pred["energy_lower_j"] = pi["lower"].to_numpy()
        pred["energy_upper_j"] = pi["upper"].to_numpy()
    else:
        pred["energy_j"] = model.predict(cand)
    pred["energy_per_output_token_j"] = pred["energy_j"] / pred["output_tokens"]
    _write_table(pred, args.output, args.format)
    return EXIT_OK


def _read_candidates(path: str) -> pd.DataFrame:
    """Candidate configurations: a table without measurements, read and checked like a
    profiling table (aliases, unit suffixes, bounds); see :func:`energylens.read_candidates`."""
    from .schema import read_candidates

    p = Path(path)
    if not p.is_file():
        raise _BadInput(f"Candidates file '{p}' does not exist.")
    return read_candidates(p)


def cmd_select(args) -> int:
    from .selection import select_config

    model = _load_any_model(args.model_file)
    cand = _read_candidates(args.candidates)
    constraints = {}
    if args.max_gpus is not None:
        constraints["max_gpus"] = args.max_gpus
    latency_model = None
    if args.latency_model:
        latency_model = {}
        for item in args.latency_model:
            if "=" not in item:
                raise _BadInput(f"--latency-model expects TARGET=FILE (e.g. tpot_s=tpot.json); got {item!r}.")
            target, f = item.split("=", 1)
            latency_model[target] = _load_any_model(f)
    for key in ("ttft_s", "tpot_s", "latency_s"):
        v = getattr(args, key)
        if v is not None:
            constraints[key] = v
    ranked = select_config(model, cand, objective=args.objective, constraints=constraints or None,
                           latency_model=latency_model, top=args.top)
    _write_table(ranked, args.output, args.format)
    return EXIT_OK


def cmd_sweetspot(args) -> int:
    from .models import SweetSpotModel

    df = _read_table(args)
    for col, val in (("model", args.model_name), ("gpu", args.gpu)):
        if val is not None:
            df = df[df[col] == val]
    for item in args.where or []:
        col, sep, val = item.partition("=")
        if not sep:
            raise _BadInput(f"--where expects COLUMN=VALUE (e.g. tp=1); got {item!r}.")
        if col not in df.columns:
            raise _BadInput(f"--where names column {col!r} absent from {args.table}; columns are "
                            f"{list(df.columns)}.")
        num = pd.to_numeric(pd.Series([val]), errors="coerce").iloc[0]
        if pd.api.types.is_numeric_dtype(df[col]) and pd.notna(num):
            df = df[np.isclose(df[col].to_numpy(dtype=float), float(num))]
        else:
            df = df[df[col].astype(str) == val]
    if df.empty:
        raise _BadInput("No rows left after --model-name/--gpu/--where filtering.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = SweetSpotModel().fit(df)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    inputs = args.inputs or sorted(df["input_tokens"].unique())[:8]
    outputs = args.outputs or sorted(df["output_tokens"].unique())
    spot = m.sweet_spot(inputs, outputs, tolerance=args.tolerance)
    table = pd.DataFrame({"input_tokens": np.asarray(inputs, float),
                          "optimal_output_tokens": m.optimal_output_tokens(np.asarray(inputs, float))})
    surf = m.efficiency_surface(inputs, table["optimal_output_tokens"].clip(lower=1).to_numpy())
    table["tokens_per_joule_at_optimum"] = np.diag(surf.to_numpy())
    print(f"best on the grid: input {spot['input_tokens']:g}, output {spot['output_tokens']:g} tokens, "
          f"{spot['tokens_per_joule']:.4g} output tokens/J ({spot['max_to_min_ratio']:.1f}x the worst)",
          file=sys.stderr)
    _write_table(table, args.output, args.format)
    if args.plot:
        from .plot import sweetspot_curves

        ax = sweetspot_curves(m, input_tokens=inputs)
        ax.figure.savefig(args.plot, dpi=120)
    return EXIT_OK


def cmd_discover(args) -> int:
    from .core.io import atomic_write
    from .discovery import SymbolicEnergyRegressor, resolve_engine

    progress = Progress(args.quiet)
    df = _read_table(args)
    engine = resolve_engine(args.engine)
    if "random_state" in engine.get_params():
        engine.set_params(random_state=args.seed)
    progress(f"discovering structure of {args.target} over {len(df)} rows (engine {engine.name}) ...")
    reg = SymbolicEnergyRegressor(target=args.target, features=args.features or None, engine=engine,
                                  model_selection=args.selection, progress=False if args.quiet else None)
    res = reg.fit(df).result_
    progress(f"engine {res.engine_} found {len(res.equations_)} formulas")
    if args.format == "latex":
        text = res.to_latex()
        if args.output:
            atomic_write(args.output, text)
        else:
            sys.stdout.write(text)
    else:
        # Full precision in the file; the line below shows constants to 4 significant digits.
        _write_table(res.table(digits=None), args.output, args.format)
    print(res.summary(), file=sys.stderr)
    return EXIT_OK


def cmd_compare(args) -> int:
    from .evaluation.protocols import sample_efficiency
    from .models import EnergyLensModel, LinearEnergyModel, LogLinearEnergyModel, WilkinsModel
    from .models.ensemble import GradientBoostingEnergyModel, RandomForestEnergyModel
    from .models.grouped import GroupedModel

    progress = Progress(args.quiet)
    df = _read_table(args)
    by = [c for c in ("model", "gpu") if c in df.columns]
    models = {
        "EnergyLens": GroupedModel(EnergyLensModel(), by=by),
        "Wilkins": GroupedModel(WilkinsModel(), by=by),
        "Linear": GroupedModel(LinearEnergyModel(), by=by),
        "LogLinear": GroupedModel(LogLinearEnergyModel(), by=by),
        "RandomForest": RandomForestEnergyModel(),
        "HistGradientBoosting": GradientBoostingEnergyModel(),
    }
    progress(f"comparing {len(models)} models over n_train={args.n_train}, {args.seeds} seeds ...")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sample_efficiency(models, df, n_train=args.n_train, seeds=args.seeds,
                                dataset=Path(args.table).stem)
    summary = (res.groupby(["model", "n_train", "metric"])["value"].mean().unstack("metric").reset_index())
    _write_table(summary if not args.long else res, args.output, args.format)
    progress("done")
    return EXIT_OK


def cmd_report(args) -> int:
    from .report import write_report

    progress = Progress(args.quiet)
    df = _read_table(args)
    path = write_report(df, args.output, title=args.title, source=str(args.table), progress=progress,
                        seeds=args.seeds, quick=args.quick)
    print(str(path))
    return EXIT_OK


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="energylens",
        description="Fit interpretable closed-form energy models of LLM inference, predict "
                    "unmeasured configurations and pick the most energy-efficient one.",
        epilog="Exit codes: 0 ok, 2 bad input, 1 internal error.",
    )
    p.add_argument("--version", action="version", version=f"energylens {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("validate", help="check a profiling table and summarise it")
    _table_args(s)
    s.add_argument("-o", "--output", help="also write the canonical table (CSV) here")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("simulate", help="write a synthetic profiling table from the physics simulator")
    _output_args(s)
    s.add_argument("--models", nargs="*", help="model names (see energylens.simulate.MODEL_SPECS)")
    s.add_argument("--gpus", nargs="*", help="GPU names (see energylens.simulate.GPU_SPECS)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--noise", type=float, default=0.02, help="relative measurement noise (sd)")
    s.add_argument("--n-requests", type=int, default=None,
                   help="finite pool of requests per run (default: saturated)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("discover", help="symbolic regression over a table: a Pareto front of formulas")
    _table_args(s)
    s.add_argument("-o", "--output", help="write the table here instead of standard output")
    s.add_argument("--format", choices=("csv", "json", "latex"), default="csv",
                   help="table format (default: csv; csv and json keep full precision, latex shows "
                        "constants to 4 significant digits with a legend of the symbols)")
    s.add_argument("--engine", choices=("auto", "terms", "operon", "pysr"), default="auto")
    s.add_argument("--target", default="energy_j")
    s.add_argument("--features", nargs="*")
    s.add_argument("--selection", choices=("best", "accuracy", "score", "criterion"), default="best",
                   help="rule choosing the one selected formula (marked in the 'selected' column)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the genetic engines")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.set_defaults(func=cmd_discover)

    s = sub.add_parser("fit", help="fit a closed form and save it as JSON")
    _table_args(s)
    s.add_argument("-o", "--output", required=True,
                   help="model file (JSON), or a directory when --by is given")
    s.add_argument("--model", choices=("energylens", "sweetspot", "wilkins"), default="energylens")
    s.add_argument("--by", default=None, help="fit one model per group, e.g. model,gpu")
    s.add_argument("--loss", choices=("relative", "log", "absolute", "robust"), default="relative")
    s.add_argument("--batch-rule", choices=("auto", "running", "littles_law", "saturating", "cap"),
                   default="auto")
    s.add_argument("--size-covariate", choices=("params_b", "active_params_b"), default=None)
    s.add_argument("--jobs", type=int, default=None, help="parallel group fits")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("predict", help="predict energy (with an interval) for candidate configurations")
    s.add_argument("model_file", help="model JSON from 'energylens fit' (or its --by directory)")
    s.add_argument("candidates", help="CSV or parquet of configurations")
    _output_args(s)
    s.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("select", help="rank candidate configurations by predicted energy")
    s.add_argument("model_file")
    s.add_argument("candidates")
    _output_args(s)
    s.add_argument("--objective", choices=("energy_j", "energy_per_output_token_j"), default="energy_j")
    s.add_argument("--latency-model", nargs="*", metavar="TARGET=FILE",
                   help="latency models, e.g. tpot_s=tpot.json ttft_s=ttft.json")
    s.add_argument("--ttft-s", dest="ttft_s", type=float, help="bound on time to first token (s)")
    s.add_argument("--tpot-s", dest="tpot_s", type=float, help="bound on time per output token (s)")
    s.add_argument("--latency-s", dest="latency_s", type=float, help="bound on request latency (s)")
    s.add_argument("--max-gpus", type=int, help="GPUs available")
    s.add_argument("--top", type=int, default=None)
    s.set_defaults(func=cmd_select)

    s = sub.add_parser("sweetspot", help="fit the SweetSpot length model; optimal output lengths")
    _table_args(s)
    _output_args(s)
    s.add_argument("--model-name", default=None, help="keep rows of this model")
    s.add_argument("--gpu", default=None, help="keep rows of this GPU")
    s.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="keep rows where COLUMN equals VALUE (repeatable), e.g. --where tp=1 "
                        "--where batch_size=32: the model describes one configuration")
    s.add_argument("--inputs", nargs="*", type=float)
    s.add_argument("--outputs", nargs="*", type=float)
    s.add_argument("--tolerance", type=float, default=0.9)
    s.add_argument("--plot", default=None, help="save sweet-spot curves to this PNG")
    s.set_defaults(func=cmd_sweetspot)

    s = sub.add_parser("compare", help="compare closed forms and ensembles by training-set size")
    _table_args(s)
    _output_args(s)
    s.add_argument("--n-train", nargs="*", type=int, default=[10, 20, 50])
    s.add_argument("--seeds", type=int, default=5)
    s.add_argument("--long", action="store_true", help="write every (model, n, seed, metric) row")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="fit, discover, compare and select: a self-contained HTML report")
    _table_args(s)
    s.add_argument("-o", "--output", required=True, help="output directory")
    s.add_argument("--title", default="energylens report")
    s.add_argument("--seeds", type=int, default=5, help="seeds of the comparison")
    s.add_argument("--quick", action="store_true", help="smaller comparison and discovery budget")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    try:
        return args.func(args)
    except (SchemaError, ModelFileError, InfeasibleError, _BadInput, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EnergyLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception:  # noqa: BLE001 - the last line of defence, with the traceback
        print("internal error (please report it with the traceback below):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
