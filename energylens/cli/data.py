"""Commands about tables: ``validate``, ``simulate`` and ``grid``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from .files import STDOUT, BadInput, Outputs, parse_pairs, read_table, write_table
from .messages import log

__all__ = ["cmd_validate", "cmd_simulate", "cmd_grid"]


def _range(df, col: str) -> list[float] | None:
    return [float(df[col].min()), float(df[col].max())] if col in df.columns else None


def _summary(df, args) -> dict:
    from ..tables import LAYOUTS, detect_layout

    path = Path(args.table)
    layout = args.layout if args.layout != "auto" else detect_layout(path)
    return {
        "table": str(args.table),
        "layout": layout,
        "source": LAYOUTS[layout].title if layout in LAYOUTS else "table file",
        "rows": int(len(df)),
        "columns": list(map(str, df.columns)),
        "models": sorted(map(str, df["model"].unique())),
        "gpus": sorted(map(str, df["gpu"].unique())),
        "tp": sorted(int(v) for v in df["tp"].unique()),
        "pp": sorted(int(v) for v in df["pp"].unique()),
        "batch_size": _range(df, "batch_size"),
        "input_tokens": _range(df, "input_tokens"),
        "output_tokens": _range(df, "output_tokens"),
        "energy_j": _range(df, "energy_j"),
        "energy_per_output_token_j_median": float(df["energy_per_output_token_j"].median()),
        "has_phase_split": bool({"prefill_energy_j", "decode_energy_j"} <= set(df.columns)),
    }


def _print_summary(s: dict) -> None:
    what = "" if s["layout"] == "table" else f" ({s['source']})"
    print(f"{s['table']}: valid profiling table{what}, {s['rows']} rows")
    for k in ("models", "gpus", "tp", "pp"):
        values = s[k]
        shown = ", ".join(map(str, values[:12])) + (f" ... ({len(values)} in all)"
                                                    if len(values) > 12 else "")
        print(f"  {k:<14} {shown}")
    for k in ("batch_size", "input_tokens", "output_tokens", "energy_j"):
        if s[k] is not None:
            print(f"  {k:<14} {s[k][0]:g} to {s[k][1]:g}")
    print(f"  energy per output token (median): {s['energy_per_output_token_j_median']:.4g} J/token")
    print(f"  prefill/decode split: {'yes' if s['has_phase_split'] else 'no'}")


def cmd_validate(args, summary) -> int:
    """Check a table and summarise it; ``-o`` writes the canonical table."""
    if args.output == STDOUT:
        raise BadInput("validate prints its summary on standard output, so -o - would mix the "
                       "canonical table into it; give the table a file name, e.g. -o "
                       "canonical.csv.")
    out = Outputs([args.table], args.force).file(args.output)
    df = read_table(args)
    s = _summary(df, args)
    if args.format == "json":
        print(json.dumps(s, indent=2))
    else:
        _print_summary(s)
    if out is not None:
        write_table(df, str(out), "csv")
        log.info(f"wrote the canonical table to {out}")
    return 0


def _check_catalogue_names(names, flag: str) -> None:
    """Refuse a name of ``--models`` or ``--gpus`` the catalogue does not know, by its flag."""
    from ..core.catalogue import resolve_gpu, resolve_model
    from ..exceptions import CatalogueError
    from .messages import cli_text

    resolve = resolve_model if flag == "--models" else resolve_gpu
    for name in names or []:
        try:
            resolve(name)
        except CatalogueError as exc:
            raise BadInput(f"{flag} {name}: {cli_text(str(exc))}") from exc


def cmd_simulate(args, summary) -> int:
    """A synthetic profiling table from the physics simulator."""
    from ..simulate import simulate_profiles

    out = Outputs([], args.force).file(args.output)
    _check_catalogue_names(args.models, "--models")
    _check_catalogue_names(args.gpus, "--gpus")
    kwargs: dict = {"seed": args.seed, "noise": args.noise}
    if args.models:
        kwargs["models"] = args.models
    if args.gpus:
        kwargs["gpus"] = args.gpus
    if args.n_requests is not None:
        kwargs["n_requests"] = args.n_requests
    df = simulate_profiles(**kwargs)
    write_table(df, str(out) if out else None, args.format)
    log.info(f"simulated {len(df)} configurations (synthetic data)")
    return 0


def _grid_extra(items) -> dict:
    extra = parse_pairs(items, "--set", "workload=chat")
    reserved = {"model", "gpu", "tp", "pp", "dp", "batch_size", "input_tokens", "output_tokens",
                "params_b", "n_gpus", "feasible", "reason", "running_batch", "memory_limited"}
    clash = sorted(set(extra) & reserved)
    if clash:
        raise BadInput(f"--set cannot set {clash}: use their own options (e.g. --tp 2).")
    return {k: _value(v) for k, v in extra.items()}


def _value(text: str):
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else (``"chat"``, ``"nan"``) stays text."""
    for cast in (int, float):
        try:
            x = cast(text)
        except ValueError:
            continue
        if cast is int or math.isfinite(x):
            return x
    return text


def cmd_grid(args, summary) -> int:
    """The candidate table of :func:`energylens.candidate_grid`, with feasibility."""
    from ..selection import candidate_grid

    out = Outputs([], args.force).file(args.output)
    for flag, values in (("--tp", args.tp), ("--pp", args.pp), ("--dp", args.dp)):
        if min(values) < 1:
            raise BadInput(f"{flag} takes degrees of at least 1 (e.g. {flag} 1 2); got {values}.")
    for flag, values in (("--batch-size", args.batch_size), ("--input-tokens", args.input_tokens),
                         ("--output-tokens", args.output_tokens)):
        if not all(v > 0 and v < float("inf") for v in values):
            raise BadInput(f"{flag} takes positive numbers (e.g. {flag} 64); got {values}.")
    df = candidate_grid(model=args.model, gpu=args.gpu, tp=args.tp, pp=args.pp, dp=args.dp,
                        batch_size=args.batch_size, input_tokens=args.input_tokens,
                        output_tokens=args.output_tokens, params_b=args.params_b,
                        gpus_available=args.gpus_available,
                        check_memory=not args.no_memory_check,
                        drop_infeasible=args.drop_infeasible, **_grid_extra(args.extra))
    write_table(df, str(out) if out else None, args.format)
    n_ok = int(df["feasible"].sum()) if len(df) else 0
    n_lim = int((df["feasible"] & df["memory_limited"]).sum()) if "memory_limited" in df else 0
    log.info(f"{len(df)} candidate configurations, {n_ok} feasible"
             + (f", {n_lim} of them memory-limited (the KV cache holds fewer sequences than "
                "the cap: see running_batch)" if n_lim else ""))
    if len(df) and n_ok == 0:
        log.warning("no candidate is feasible; first reasons: "
                    + " | ".join(df["reason"].drop_duplicates().head(3)))
    if out is None:
        sys.stdout.flush()
    return 0
