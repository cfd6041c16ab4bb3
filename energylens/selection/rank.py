"""Ranking candidate configurations by predicted energy, under constraints."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from ..core.checks import flag_column
from ..core.options import LEVEL, POSITIVE_INT, StrOptions, check_options
from ..exceptions import EnergyLensWarning, InfeasibleError
from .grid import memory_fits, served_batches

__all__ = ["select_config", "model_target", "as_served"]

_LATENCY = ("latency_s", "ttft_s", "tpot_s")
_CONSTRAINTS = (*_LATENCY, "max_gpus", "gpu_memory")
_OPTIONS = {
    "objective": [StrOptions({"energy_j", "energy_per_output_token_j"})],
    "constraints": [Mapping, None],
    "level": [LEVEL],
    "top": [POSITIVE_INT, None],
    "include_infeasible": ["boolean"],
}


def _predict_with_interval(model, X: pd.DataFrame, level: float) -> pd.DataFrame:
    """Energy with its interval; extra columns of ``predict_interval`` are kept."""
    if hasattr(model, "predict_interval"):
        pi = model.predict_interval(X, level=level)
        out = pd.DataFrame({"energy_j": pi["energy_j"].to_numpy(),
                            "energy_lower_j": pi["lower"].to_numpy(),
                            "energy_upper_j": pi["upper"].to_numpy()}, index=X.index)
        for c in pi.columns:
            if c not in ("energy_j", "lower", "upper") and c not in out:
                out[c] = pi[c].to_numpy()
        return out
    pred = np.asarray(model.predict(X), dtype=float)
    return pd.DataFrame({"energy_j": pred, "energy_lower_j": np.nan, "energy_upper_j": np.nan},
                        index=X.index)


def model_target(model) -> str | None:
    """The column a fitted model predicts (``"energy_j"``, ``"tpot_s"`` ...), or None when the
    model does not say (an estimator from outside energylens).

    A grouped model predicts what its group models (and fallback) predict.

    Examples
    --------
    >>> from energylens import EnergyLensModel, LatencyModel
    >>> model_target(EnergyLensModel()), model_target(LatencyModel(target="ttft_s"))
    ('energy_j', 'ttft_s')
    """
    if hasattr(model, "models_"):
        parts = [*model.models_.values(), getattr(model, "fallback_", None)]
        found = {model_target(m) for m in parts if m is not None} - {None}
        return found.pop() if len(found) == 1 else None
    target = getattr(model, "_target_name", None)
    return target if isinstance(target, str) else None


def _latency_predictions(out: pd.DataFrame, cand: pd.DataFrame, latency_model) -> None:
    if latency_model is None:
        return
    models = (dict(latency_model) if isinstance(latency_model, Mapping)
              else {model_target(latency_model) or getattr(latency_model, "target", "latency_s"):
                    latency_model})
    for target, lm in models.items():
        if target not in _LATENCY:
            raise ValueError(f"Latency model key {target!r} must be one of {_LATENCY}.")
        declared = model_target(lm)
        if declared is not None and declared != target:
            raise ValueError(f"The latency model given for {target!r} is a {type(lm).__name__} "
                             f"predicting {declared!r}, not {target!r}; its predictions would be "
                             f"read as {target} seconds. Give a model fitted to {target!r}, e.g. "
                             f"LatencyModel(target={target!r}).")
        out[target] = np.asarray(lm.predict(cand), dtype=float)
        if target in cand.columns and pd.to_numeric(cand[target], errors="coerce").notna().any():
            out[f"{target}_measured"] = cand[target].to_numpy()
            warnings.warn(f"select_config: the candidates carry a measured {target} column and a "
                          f"latency model for {target} is given: the ranking and its bounds use "
                          f"the model's predictions; the measured values are kept as "
                          f"{target}_measured (leave the model out to use them).",
                          EnergyLensWarning, stacklevel=2)


def _bounds_text(constraints: dict) -> str:
    """``"tpot_s <= 0.05, max_gpus <= 4"`` (a flag such as gpu_memory by its name)."""
    parts = [k if isinstance(v, (bool, np.bool_)) else f"{k} <= {v:g}" for k, v in constraints.items()
             if v is not None and v is not False]
    return ", ".join(parts) or "none"


def _memory_fits(cand: pd.DataFrame) -> list:
    """The gpu_memory constraint: the catalogue's memory rule, row by row
    (:func:`~energylens.selection.grid.memory_fits`), every row checked."""
    need = [c for c in ("model", "gpu", "batch_size", "input_tokens", "output_tokens")
            if c not in cand]
    if need:
        raise ValueError(f"The gpu_memory constraint needs candidate columns {need}.")
    fits = memory_fits(cand)
    unknown = [i for i, f in enumerate(fits) if f is None]
    if unknown:
        raise ValueError(
            f"The gpu_memory constraint cannot be checked for rows {unknown[:5]} (GPU "
            f"{cand['gpu'].iloc[unknown[0]]!r} or model {cand['model'].iloc[unknown[0]]!r} "
            "is not in the catalogue and no size is given): add them with "
            "energylens.core.catalogue.register_gpus / register_models, name GPUs like "
            "'X-80GB', or give a params_b column.")
    return fits


def _given_running_batch(cand: pd.DataFrame, rule: np.ndarray, limited: np.ndarray
                         ) -> np.ndarray:
    """The candidates' own ``running_batch``, except where the memory rule says a row is
    memory-limited: there ``min(given, capacity)`` (the capacity where none is given), with
    a warning naming the rows whose given running batch exceeds the KV capacity."""
    given = pd.to_numeric(cand["running_batch"], errors="coerce").to_numpy(dtype=float)
    over = limited & np.isfinite(given) & (given > rule)
    out = np.where(limited, np.where(np.isfinite(given), np.fmin(given, rule), rule), given)
    if over.any():
        rows = list(cand.index[over][:5])
        warnings.warn(f"select_config: the given running_batch of rows {rows} exceeds the KV "
                      f"capacity the memory rule gives ({given[over][:5].tolist()} > "
                      f"{rule[over][:5].tolist()}): they are memory-limited and predicted at "
                      "the capacity.", EnergyLensWarning, stacklevel=3)
    return out


def as_served(cand: pd.DataFrame) -> pd.DataFrame:
    """The candidates as the server runs them: a memory-limited candidate (columns
    ``memory_limited`` and ``running_batch``, as :func:`candidate_grid` gives them) has its
    ``batch_size`` set to the running batch, so that every model, whatever batch rule it
    uses (:mod:`energylens.core.batch`), predicts it at the batch it will run. Other rows,
    and candidates without those columns, are unchanged (the same frame is returned)."""
    if not {"memory_limited", "running_batch"} <= set(cand.columns):
        return cand
    run = pd.to_numeric(cand["running_batch"], errors="coerce").to_numpy(dtype=float)
    cap = pd.to_numeric(cand["batch_size"], errors="coerce").to_numpy(dtype=float)
    rows = (flag_column(cand, "memory_limited", "candidates") & np.isfinite(run) & (run > 0)
            & (run < cap))
    if not rows.any():
        return cand
    served = cand.copy()
    served["batch_size"] = np.where(rows, run, cap)
    return served


def _bound_violations(key: str, bound: float, cand: pd.DataFrame, out: pd.DataFrame,
                      n_gpus: np.ndarray) -> list[str]:
    """Rows breaking a numeric bound (latency or GPU count), with their reasons; a row whose
    value is unknown (NaN) cannot be shown to meet the bound and is excluded too."""
    if key == "max_gpus":
        vals, label = np.asarray(n_gpus, dtype=float), "GPUs"
    elif key in out:
        vals, label = pd.to_numeric(out[key], errors="coerce").to_numpy(dtype=float), key
    elif key in cand:
        vals, label = pd.to_numeric(cand[key], errors="coerce").to_numpy(dtype=float), key
    else:
        raise ValueError(f"Constraint on {key!r} needs a latency model for it "
                         f"(latency_model={{'{key}': model}}) or a '{key}' column.")
    return [f"{label} unknown (NaN), cannot be shown <= {bound:g}" if v != v
            else f"{label} {v:.4g} > {bound:g}" if v > bound else "" for v in vals]


def _checked_constraints(constraints: Mapping | None) -> dict:
    """The bounds, checked: a positive finite number per latency or GPU bound, a boolean for
    ``gpu_memory``; a bound of None is no bound."""
    constraints = {k: v for k, v in dict(constraints or {}).items() if v is not None}
    unknown = set(constraints) - set(_CONSTRAINTS)
    if unknown:
        raise ValueError(f"Unknown constraint(s) {sorted(unknown)}; use {list(_CONSTRAINTS)}.")
    for key, v in constraints.items():
        if key == "gpu_memory":
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"Constraint gpu_memory must be True or False; got {v!r}.")
            continue
        unit = "GPUs" if key == "max_gpus" else "seconds"
        if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
                or not np.isfinite(v) or v <= 0):
            raise ValueError(f"Constraint {key} must be a positive finite number ({unit}, an "
                             f"upper bound); got {v!r}. Leave the key out (or give None) for no "
                             "bound.")
    return constraints


def _check_model(model) -> None:
    """The model must predict energy: a latency model or a ranking score is refused."""
    if getattr(model, "ranks_only", False):
        raise ValueError(f"{type(model).__name__} gives a ranking score, not joules, so "
                         "select_config cannot show energies or intervals for it; rank a "
                         "scenario's candidates by its predict() directly.")
    target = model_target(model)
    if target is not None and target != "energy_j":
        raise ValueError(f"select_config ranks by energy, but the model is a "
                         f"{type(model).__name__} predicting {target!r}; pass an energy model, "
                         f"and this one as latency_model={{{target!r}: model}} to bound it.")


def _unread_settings(model, cand: pd.DataFrame) -> list[str]:
    """Candidate columns that vary but that the model does not read (a length-only model
    over a grid of layouts): its predictions cannot tell those candidates apart."""
    read = getattr(model, "_model_variables", None)
    if read is None:
        return []
    from ..core.variables import VARIABLE_COLUMNS

    used = {VARIABLE_COLUMNS.get(v, v) for v in read()}
    if "B" in read():
        used |= {"batch_size", "running_batch"}
    return [c for c in ("tp", "pp", "dp", "ep", "batch_size", "input_tokens", "output_tokens")
            if c in cand and c not in used and cand[c].nunique(dropna=True) > 1]


def _apply_constraints(constraints: dict, cand: pd.DataFrame, out: pd.DataFrame,
                       feasible: np.ndarray, reasons: list[list[str]],
                       fits: list | None = None) -> dict[str, int]:
    """Mark rows that break a constraint (in place); returns how many each one excludes.
    ``fits``: the memory rule's result for the gpu_memory constraint, where computed."""
    n_gpus = np.prod([pd.to_numeric(cand[c], errors="coerce").to_numpy(dtype=float)
                      for c in ("tp", "pp", "dp")], axis=0)  # a table read from text gives "2"
    violated: dict[str, int] = {}
    for key, bound in constraints.items():
        if key == "gpu_memory" and not bound:
            continue
        if key == "gpu_memory":
            msgs = [f.reason for f in (fits if fits is not None else _memory_fits(cand))]
        else:
            msgs = _bound_violations(key, bound, cand, out, n_gpus)
        bad = np.array([bool(m) for m in msgs], dtype=bool)
        for i in np.flatnonzero(bad):
            if msgs[i] not in reasons[i]:
                reasons[i].append(msgs[i])
        violated[key] = int(bad.sum())
        feasible &= ~bad
    return violated


def select_config(
    model,
    candidates: pd.DataFrame,
    *,
    objective: Literal["energy_j", "energy_per_output_token_j"] = "energy_j",
    constraints: Mapping[str, float | bool] | None = None,
    latency_model=None,
    level: float = 0.9,
    top: int | None = None,
    include_infeasible: bool = True,
) -> pd.DataFrame:
    """Rank candidate configurations by predicted energy, best first.

    Parameters
    ----------
    model : estimator
        A fitted energy model (``predict`` in joules per request; ``predict_interval`` is used
        where it exists, and any columns it returns besides the interval are kept).
    candidates : DataFrame
        Configurations in canonical columns (e.g. from :func:`candidate_grid`; a ``feasible``
        and ``reason`` column from there are respected). A candidate flagged
        ``memory_limited`` is predicted at its ``running_batch`` (:func:`as_served`): the
        batch the server runs, not its cap.
    objective : {"energy_j", "energy_per_output_token_j"}
        What to minimise: energy per request, or per generated token (the same ranking
        within a scenario of fixed lengths; they differ when candidates mix lengths).
        Energy per request already counts every GPU of every replica, so there is no
        per-GPU objective: dividing by the GPU count would favour the largest setups.
    constraints : dict, optional
        Bounds: ``{"ttft_s": 0.5, "tpot_s": 0.05, "latency_s": 10, "max_gpus": 8,
        "gpu_memory": True}``. Latency bounds (seconds, upper) need the matching latency
        model (or a column of that name in the candidates, e.g. measured ``tpot_s``);
        ``max_gpus`` bounds ``tp * pp * dp``; ``gpu_memory=True`` applies the catalogue's
        memory rule (as :func:`candidate_grid` does: weights and one sequence's KV cache must
        fit; a larger cap runs memory-limited). A bound of None is no bound; a
        candidate whose bounded value is unknown (NaN) is infeasible, never assumed to meet it.
    latency_model : estimator or dict, optional
        A latency model (its ``target`` says which column it predicts) or a dict
        ``{"tpot_s": m1, "ttft_s": m2}``.
    level : float
        Coverage of the energy interval.
    top : int, optional
        Return only the best ``top`` feasible rows (infeasible rows are still appended when
        ``include_infeasible``).
    include_infeasible : bool
        Keep infeasible candidates (ranked after the feasible ones, with the reason).

    Returns
    -------
    DataFrame
        ``rank`` (whole numbers, 1 = best; ``<NA>`` for infeasible rows), the objective,
        ``energy_j`` with ``energy_lower_j``/``energy_upper_j``, predicted latency columns,
        ``feasible``, ``reason``, and the candidate's columns; indexed like ``candidates``.
        With ``gpu_memory=True``, ``running_batch`` and ``memory_limited`` (as
        :func:`candidate_grid` gives them) where the candidates lack them; a given
        ``running_batch`` above the KV capacity of a memory-limited row is lowered to that
        capacity, with a warning. A ``precision`` the catalogue does not know raises a
        ValueError under ``gpu_memory=True``, as :func:`candidate_grid` does.

    Raises
    ------
    InfeasibleError
        If no candidate satisfies the constraints (the message names the tightest one).

    Examples
    --------
    >>> import warnings
    >>> from energylens import EnergyLensModel, candidate_grid, select_config, simulate_profiles
    >>> table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     model = EnergyLensModel().fit(table)
    >>> cand = candidate_grid(model="Llama-3.1-8B", gpu="H100-SXM", tp=(1, 2, 4),
    ...                       batch_size=(8, 128), input_tokens=1024, output_tokens=512)
    >>> ranked = select_config(model, cand, constraints={"max_gpus": 2})
    >>> ranked[["rank", "tp", "batch_size"]].head(2).values.tolist()
    [[1, 1, 128.0], [2, 2, 128.0]]
    >>> ranked["reason"].iloc[-1]
    'GPUs 4 > 2'
    """
    check_options("select_config", _OPTIONS, locals())
    if not isinstance(candidates, pd.DataFrame) or candidates.empty:
        raise ValueError("select_config needs a non-empty DataFrame of candidates.")
    constraints = _checked_constraints(constraints)
    _check_model(model)
    unread = _unread_settings(model, candidates)
    if unread:
        warnings.warn(f"select_config: the candidates differ in {unread}, which "
                      f"{type(model).__name__} does not read: candidates that differ only there "
                      "get the same predicted energy, and their order is arbitrary. Use a model "
                      "of those settings (EnergyLensModel, HierarchicalEnergyModel).",
                      EnergyLensWarning, stacklevel=2)
    cand = candidates.copy()
    for c in ("pp", "dp"):
        if c not in cand:
            cand[c] = 1
    feasible = flag_column(cand, "feasible", "select_config", missing=None if "feasible" in cand
                           else True)
    reasons = [[r] if isinstance(r, str) and r else [] for r in
               (cand["reason"] if "reason" in cand else [""] * len(cand))]
    fits = _memory_fits(cand) if constraints.get("gpu_memory") else None
    if fits is not None:  # say which rows run memory-limited, where the candidates do not
        run, limited = served_batches(fits, cand["batch_size"])
        if "running_batch" in cand:  # never above what the KV memory holds
            run = _given_running_batch(cand, run, limited)
        cand["running_batch"] = run
        if "memory_limited" not in cand:
            cand["memory_limited"] = limited
    served = as_served(cand)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _predict_with_interval(model, served, level)
        _latency_predictions(out, served, latency_model)
    for w in caught:  # said where select_config was called, not deep inside it
        warnings.warn(w.message, w.category, stacklevel=2)
    violated = _apply_constraints(constraints, cand, out, feasible, reasons, fits)
    out["energy_per_output_token_j"] = out["energy_j"] / cand["output_tokens"].to_numpy(dtype=float)
    out["feasible"] = feasible
    out["reason"] = ["; ".join(r) for r in reasons]
    for c in cand.columns:
        if c not in out.columns:
            out[c] = cand[c].to_numpy()
    if not feasible.any():
        tight = max(violated, key=violated.get) if violated else "feasibility"
        raise InfeasibleError(
            f"No candidate satisfies the constraints: {tight} excludes "
            f"{violated.get(tight, len(cand))} of {len(cand)} candidates (constraints: "
            f"{_bounds_text(constraints)}); first reasons: "
            + " | ".join(r for r in out["reason"].head(3)))
    ok = out[feasible].sort_values([objective, "energy_j"], kind="mergesort")
    ok.insert(0, "rank", pd.array(np.arange(1, len(ok) + 1), dtype="Int64"))
    if top is not None:
        ok = ok.head(top)
    parts = [ok]
    if include_infeasible:
        bad = out[~feasible].sort_values(objective, kind="mergesort")
        bad.insert(0, "rank", pd.array([pd.NA] * len(bad), dtype="Int64"))
        parts.append(bad)
    return pd.concat(parts)
