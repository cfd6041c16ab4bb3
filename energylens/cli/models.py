"""Commands about models: ``fit``, ``predict``, ``select`` and ``sweetspot``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from .files import (
    BadInput,
    Outputs,
    by_columns,
    check_by,
    parse_pairs,
    read_candidates,
    read_table,
    write_bytes,
    write_table,
    writing,
)
from .messages import log
from .parser import LATENCY_TARGETS

__all__ = ["cmd_fit", "cmd_predict", "cmd_select", "cmd_sweetspot", "check_groups"]


def _hierarchical_from_args(args):
    from ..models import HierarchicalEnergyModel

    given = [opt for opt, v in (("--by", args.by), ("--loss", args.loss),
                                ("--batch-rule", args.batch_rule),
                                ("--size-covariate", args.size_covariate)) if v]
    if given:
        raise BadInput(f"--model hierarchical fits one model over all the table's groups with its "
                       f"own loss and batch terms; leave out {', '.join(given)}.")
    if args.target != "energy_j":
        raise BadInput(f"--model hierarchical is a model of energy; --target {args.target} fits a "
                       "LatencyModel. Leave --model out.")
    return HierarchicalEnergyModel(n_jobs=args.jobs,
                                   calibrate="models" if args.calibrate_new_models else "none")


def _model_from_args(args):
    from ..models import EnergyLensModel, LatencyModel, SweetSpotModel, WilkinsModel

    if args.model == "hierarchical":
        return _hierarchical_from_args(args)
    if args.calibrate_new_models:
        raise BadInput("--calibrate-new-models calibrates the intervals of --model hierarchical; "
                       f"--model {args.model} predicts no model it was not fitted on.")
    common = {"loss": args.loss or "relative"}
    rule = args.batch_rule or "auto"
    if args.target != "energy_j":
        if args.model != "energylens":
            raise BadInput(f"--model {args.model} is a closed form of energy; --target "
                           f"{args.target} fits a LatencyModel (the energylens physics, in "
                           "seconds). Leave --model out.")
        if args.size_covariate:
            raise BadInput(f"--size-covariate applies to energy models; --target {args.target} "
                           "fits a LatencyModel without it. Leave --size-covariate out.")
        return LatencyModel(target=args.target, batch_rule=rule, **common)
    if args.model == "energylens":
        return EnergyLensModel(batch_rule=rule, size_covariate=args.size_covariate,
                               **common)
    if args.model == "sweetspot":
        return SweetSpotModel(**common)
    return WilkinsModel(**common)


def _fit_grouped(model, df, by, args, out, summary) -> None:
    from ..models import GroupedModel
    from ..models.grouped import fit_listing_groups

    log.info(f"fitting one {type(model).__name__} per group of {', '.join(by)} ...")
    g = fit_listing_groups(GroupedModel(model, by=by, n_jobs=args.jobs), df)
    summary.add_group_warnings(g)
    with writing(out):
        g.save(out, force=args.force)
    stats = g.groups_
    cols = [c for c in [*by, "n_rows", "fitted", "mape_pct", "n_free", "aic", "error"]
            if c in stats.columns]
    print(stats[cols].to_string(index=False))
    failed = stats[~stats["fitted"].astype(bool)]
    for _, row in failed.iterrows():
        log.warning(f"group {' / '.join(str(row[c]) for c in by)} was not fitted: {row['error']}")
    log.info(f"wrote {len(g.models_)} group models to {out}/ (files named by group, "
             "listed in groups.json)")


def cmd_fit(args, summary) -> int:
    """Fit a closed form (or one per ``--by`` group) and save it."""
    by = by_columns(args.by)
    outs = Outputs([args.table], args.force)
    out = (outs.folder(args.output, kind="grouped") if by
           else outs.file(args.output, kind="energylens.model"))
    model = _model_from_args(args)
    df = read_table(args, energy=args.target == "energy_j")
    check_by(by, df, args.table)
    if args.target not in df.columns:
        raise BadInput(f"--target {args.target}: '{args.table}' has no {args.target} column; "
                       f"its columns are {list(map(str, df.columns))}.")
    if by:
        _fit_grouped(model, df, by, args, out, summary)
        return 0
    log.info(f"fitting {type(model).__name__} of {args.target} on {len(df)} rows ...")
    model.fit(df)
    with writing(out):
        model.save(out, force=args.force)
    print(model.fit_report())
    log.info(f"wrote {out}")
    return 0


def _load(path: str):
    from ..models import load_model

    if not Path(path).exists():
        raise BadInput(f"Model file '{path}' does not exist.")
    return load_model(Path(path))


def _label_hint(value: str, seen: list[str]) -> str:
    import difflib

    same_case = [s for s in seen if s.lower() == value.lower()]
    close = same_case or difflib.get_close_matches(value, seen, n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_groups(model, cand, where: str) -> None:
    """Candidates a model cannot predict, as a :class:`BadInput` naming the fitted groups:
    a grouped model without the group columns, or with groups it never fitted (and no
    fallback); any model given a label that differs from a seen one only in case."""
    from ..models.grouped import group_key

    by = list(getattr(model, "by_", []) or [])
    if hasattr(model, "models_"):
        missing = [c for c in by if c not in cand.columns]
        if missing:
            raise BadInput(f"Candidates '{where}' lack the group column(s) {missing} of the "
                           f"grouped model (fitted per {', '.join(by)}); add them.")
        fitted = [" / ".join(map(str, k)) for k in model.models_]
        keys = cand[by].astype(object).drop_duplicates().itertuples(index=False, name=None)
        unknown = [" / ".join(map(str, k)) for k in keys if group_key(k) not in model.models_]
        if unknown and getattr(model, "fallback_", None) is None:
            hint = _label_hint(unknown[0], fitted)
            raise BadInput(f"Candidates '{where}' hold group(s) of ({' / '.join(by)}) the model "
                           "was not fitted on: "
                           f"{', '.join(repr(u) for u in unknown[:5])}.{hint} Fitted groups: "
                           f"{', '.join(fitted[:20])}{' ...' if len(fitted) > 20 else ''}.")
        models = list(model.models_.values())
    else:
        models = [model]
    for m in models:
        domain = getattr(m, "domain_", None)
        for col, seen in (getattr(domain, "labels", None) or {}).items():
            if col not in cand.columns or col in by:
                continue
            for value in map(str, cand[col].dropna().unique()):
                slip = [s for s in seen if s.lower() == value.lower() and s != value]
                if slip:
                    raise BadInput(f"Candidates '{where}': {col} {value!r} differs from the "
                                   f"fitted {slip[0]!r} only in case; use the fitted name.")


def _target(model) -> str:
    """The column a model file predicts: energy unless the model says otherwise (of the
    models energylens saves, only a LatencyModel predicts another column)."""
    from ..selection.rank import model_target

    return model_target(model) or "energy_j"


#: Suffix of a candidate column kept beside the prediction that replaces it (as
#: ``select_config`` keeps a measured latency column).
MEASURED = "_measured"


def _check_measured_free(cand, columns, where: str) -> None:
    """Refuse candidates holding both a column the output replaces and its ``_measured``
    name: keeping the first would overwrite the second."""
    clash = [c for c in columns if c in cand.columns and f"{c}{MEASURED}" in cand.columns]
    if clash:
        raise BadInput(f"Candidates '{where}' hold both {clash[0]} and {clash[0]}{MEASURED}: the "
                       f"prediction replaces {clash[0]}, which is kept as {clash[0]}{MEASURED}, "
                       "where a column already is. Drop or rename one of them.")


def _note_measured(kept, where: str) -> None:
    if kept:
        log.info(f"the candidates '{where}' hold {', '.join(kept)}; the output replaces "
                 f"{'it' if len(kept) == 1 else 'them'} with predictions and keeps the given "
                 f"values as {', '.join(c + MEASURED for c in kept)}")


def _predict(model, cand, level: float, where: str = "candidates"):
    """Predictions with their interval, in columns named after the model's target:
    ``energy_j, energy_lower_j, energy_upper_j`` (and energy per output token), or for a
    latency model e.g. ``tpot_s, tpot_lower_s, tpot_upper_s``, after the candidates'
    columns. A candidate column of the same name (a measured ``energy_j``) is kept as
    ``energy_j_measured``. A memory-limited candidate (``energylens grid``) is predicted at
    its running batch."""
    import pandas as pd

    from ..selection.rank import as_served

    target = _target(model)
    stem, _, unit = target.rpartition("_")
    pred = pd.DataFrame(index=cand.index)
    served = as_served(cand)
    if hasattr(model, "predict_interval"):
        pi = model.predict_interval(served, level=level)
        pred[target] = pi[target].to_numpy()
        pred[f"{stem}_lower_{unit}"] = pi["lower"].to_numpy()
        pred[f"{stem}_upper_{unit}"] = pi["upper"].to_numpy()
        for col in ("extrapolated", "extrapolated_by", "wide"):
            if col in pi.columns:
                pred[col] = pi[col].to_numpy()
    else:
        pred[target] = model.predict(served)
    if target == "energy_j":
        pred["energy_per_output_token_j"] = pred["energy_j"] / cand["output_tokens"]
    _check_measured_free(cand, pred.columns, where)
    kept = [c for c in pred.columns if c in cand.columns]
    _note_measured(kept, where)
    out = cand.rename(columns={c: f"{c}{MEASURED}" for c in kept})
    return pd.concat([out, pred], axis=1)


#: Columns ``select_config`` fills from the energy model: the rank, the prediction, its
#: interval and the columns ``predict_interval`` adds (a latency column of
#: ``--latency-model`` it keeps as ``_measured`` itself).
_SELECT_PREDICTS = ("rank", "energy_j", "energy_lower_j", "energy_upper_j",
                    "energy_per_output_token_j", "stderr", "log_sd", "extrapolated",
                    "extrapolated_by", "wide")


def _differs(a, b) -> bool:
    """Whether two columns of the same rows differ anywhere (NaN equal to NaN)."""
    import pandas as pd

    a, b = pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)
    return not bool(((a == b) | (a.isna() & b.isna())).all())


def _select_keeping_measured(model, cand, where: str, latency_targets, **kwargs):
    """``select_config``, with each candidate column its output replaces by a prediction
    kept beside it as ``COLUMN_measured`` (the convention ``select_config`` follows for a
    measured latency column)."""
    from ..selection import select_config

    _check_measured_free(cand, [*_SELECT_PREDICTS, *latency_targets], where)
    held = [c for c in _SELECT_PREDICTS if c in cand.columns]
    ranked = select_config(model, cand.rename(columns={c: f"{c}{MEASURED}" for c in held}),
                           **kwargs)
    kept = [c for c in held if c in ranked.columns]
    ranked = ranked.rename(columns={f"{c}{MEASURED}": c for c in held if c not in kept})
    # any other column the output fills anew (one a model adds to its interval)
    given = cand.loc[ranked.index] if cand.index.is_unique else cand.iloc[:0]
    for c in given.columns:
        if (c in ranked.columns and c not in ("feasible", "reason", *held)
                and f"{c}{MEASURED}" not in ranked.columns and _differs(ranked[c], given[c])):
            ranked[f"{c}{MEASURED}"] = given[c].to_numpy()
            kept.append(c)
    _note_measured(kept, where)
    return ranked


def cmd_predict(args, summary) -> int:
    """Energy with an interval for each candidate; rows outside the training data are
    flagged in the ``extrapolated`` columns and by one warning saying how far."""
    out = Outputs([args.model_file, args.candidates], args.force).file(args.output)
    model = _load(args.model_file)
    cand = read_candidates(args.candidates, args.layout, args.units, args.encoding)
    check_groups(model, cand, args.candidates)
    pred = _predict(model, cand, args.level, args.candidates)
    write_table(pred, str(out) if out else None, args.format)
    return 0


def _latency_files(args) -> dict[str, str]:
    """``--latency-model TARGET=FILE`` pairs, each TARGET a latency column."""
    files = parse_pairs(args.latency_model, "--latency-model", "tpot_s=tpot.json")
    for target in files:
        if target not in LATENCY_TARGETS:
            raise BadInput(f"--latency-model {target}={files[target]}: TARGET must be one of "
                           f"{', '.join(LATENCY_TARGETS)} (the latency a model predicts), e.g. "
                           "--latency-model tpot_s=tpot.json.")
    return files


def _latency_models(files: dict[str, str]) -> dict:
    """The latency models of ``--latency-model``, each checked to predict its TARGET (an
    energy model would have its joules read as seconds)."""
    models = {}
    for target, path in files.items():
        lm = models[target] = _load(path)
        found = _target(lm)
        if found != target:
            raise BadInput(f"--latency-model {target}={path}: '{path}' holds a model of "
                           f"{found} ({type(lm).__name__}), not of {target}; its predictions "
                           f"would be read as {target} seconds. Fit a latency model with "
                           f"'energylens fit TABLE --target {target} -o {target}.json' and pass "
                           f"--latency-model {target}={target}.json.")
    return models


def cmd_select(args, summary) -> int:
    """Candidates ranked by predicted energy, under constraints."""
    latency_files = _latency_files(args)
    out = Outputs([args.model_file, args.candidates, *latency_files.values()],
                  args.force).file(args.output)
    model = _load(args.model_file)
    if _target(model) != "energy_j":
        raise BadInput(f"The model file '{args.model_file}' holds a model of {_target(model)} "
                       f"({type(model).__name__}); select ranks by energy. Give an energy model (from "
                       f"'energylens fit TABLE'), and this one as --latency-model "
                       f"{_target(model)}={args.model_file}.")
    latency_model = _latency_models(latency_files) or None
    cand = read_candidates(args.candidates, args.layout, args.units, args.encoding)
    check_groups(model, cand, args.candidates)
    for lm in (latency_model or {}).values():
        check_groups(lm, cand, args.candidates)
    constraints = {k: getattr(args, k) for k in LATENCY_TARGETS if getattr(args, k) is not None}
    for key in constraints:
        if key not in latency_files and key not in cand.columns:
            flag = f"--{key.replace('_', '-')}"
            raise BadInput(f"{flag} {constraints[key]:g} bounds {key}, which needs a latency "
                           f"model for it (--latency-model {key}=FILE, from 'energylens fit "
                           f"TABLE --target {key} -o FILE') or a {key} column in the "
                           f"candidates '{args.candidates}'.")
    if args.max_gpus is not None:
        constraints["max_gpus"] = args.max_gpus
    ranked = _select_keeping_measured(model, cand, args.candidates, list(latency_files),
                                      objective=args.objective,
                                      constraints=constraints or None,
                                      latency_model=latency_model, top=args.top,
                                      level=args.level)
    write_table(ranked, str(out) if out else None, args.format)
    return 0


def _filter(df, args):
    import numpy as np
    import pandas as pd

    for col, val in (("model", args.model_name), ("gpu", args.gpu)):
        if val is not None:
            df = df[df[col].astype(str) == val]
    for item in args.where or []:
        col, sep, val = item.partition("=")
        if not sep:
            raise BadInput(f"--where expects COLUMN=VALUE (e.g. --where tp=1); got {item!r}.")
        if col not in df.columns:
            raise BadInput(f"--where names column {col!r} absent from '{args.table}'; columns "
                           f"are {list(map(str, df.columns))}.")
        num = pd.to_numeric(pd.Series([val]), errors="coerce").iloc[0]
        if pd.api.types.is_numeric_dtype(df[col]) and pd.notna(num):
            df = df[np.isclose(df[col].to_numpy(dtype=float), float(num))]
        else:
            df = df[df[col].astype(str) == val]
    if df.empty:
        raise BadInput("No rows left after --model-name/--gpu/--where filtering.")
    return df


def _sweetspot_plot(m, df, inputs, path: Path) -> None:
    from matplotlib.figure import Figure

    from ..plot import sweetspot_curves

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    sweetspot_curves(m, input_tokens=inputs, data=df, ax=fig.subplots())
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lower().lstrip("."), dpi=120)
    write_bytes(path, buf.getvalue())
    log.info(f"wrote {path}")


def _optimum_words(r) -> str:
    """A row of ``SweetSpotModel.optimum`` in words, for the log."""
    if r.status in ("optimum", "not determined"):
        upper = "unbounded" if r.optimal_output_upper == float("inf") else f"{r.optimal_output_upper:.4g}"
        return (f"optimal output {r.optimal_output_tokens:.4g} tokens (90% interval "
                f"{r.optimal_output_lower:.4g} to {upper}), {r.tokens_per_joule_at_optimum:.4g} "
                f"output tokens/J there; {r.note}")
    if r.status == "longer is better":
        return (f"{r.note}; the efficiency approaches {r.tokens_per_joule_at_optimum:.4g} output "
                "tokens/J")
    return str(r.note)


def _grid_columns(m, table, inputs, outputs, tolerance: float) -> None:
    """Add, per input length, the best output length of the ``--outputs`` grid, its
    efficiency, and the range of grid lengths within ``--tolerance`` of it (in place)."""
    import numpy as np

    surf = m.efficiency_surface(inputs, outputs).to_numpy()
    surf = np.where(np.isfinite(surf) & (surf > 0), surf, np.nan)
    so = np.asarray(outputs, dtype=float)
    rows = []
    for eff in surf:
        if np.isnan(eff).all():  # no positive efficiency on the grid at this input length
            rows.append((np.nan, np.nan, np.nan, np.nan))
            continue
        best = np.nanmax(eff)
        near = so[eff >= tolerance * best]
        rows.append((so[np.nanargmax(eff)], best, near.min(), near.max()))
    for name, values in zip(("grid_output_tokens", "grid_tokens_per_joule",
                             "near_optimal_output_min", "near_optimal_output_max"), zip(*rows)):
        table[name] = values


def cmd_sweetspot(args, summary) -> int:
    """SweetSpot model of one configuration; optimal output length per input length, and
    the best output length of a grid with the near-optimal range around it."""
    import numpy as np

    from ..models import SweetSpotModel

    outs = Outputs([args.table], args.force)
    out = outs.file(args.output)
    plot = outs.file(args.plot, flag="--plot", stdout=False)
    df = _filter(read_table(args), args)
    m = SweetSpotModel().fit(df)
    inputs = np.asarray(args.inputs or sorted(df["input_tokens"].unique())[:8], float)
    outputs = np.asarray(sorted(set(args.outputs or df["output_tokens"].unique())), float)
    spot = m.sweet_spot(inputs, outputs, tolerance=args.tolerance)
    # The optimum, its kind, interval and efficiency: the table the report shows too; then
    # the best of the --outputs grid and the lengths within --tolerance of it.
    table = m.optimum(inputs)
    _grid_columns(m, table, inputs, outputs, args.tolerance)
    for r in table.itertuples():
        log.info(f"input {r.input_tokens:g}: {_optimum_words(r)}")
    log.info(f"best on the grid of output lengths: input {spot['input_tokens']:g}, output "
             f"{spot['output_tokens']:g} tokens, {spot['tokens_per_joule']:.4g} output tokens/J "
             f"({spot['max_to_min_ratio']:.1f}x the worst)")
    write_table(table, str(out) if out else None, args.format)
    if plot is not None:
        _sweetspot_plot(m, df, inputs[:: max(1, len(inputs) // 4)], plot)
    if out is None:
        sys.stdout.flush()
    return 0
