"""Saving fitted closed forms as versioned JSON, and loading them back safely.

A model file holds the class name, the constructor arguments, every parameter (value,
standard error, bounds, unit, meaning, flags), the formula as text, the fit state needed
for intervals (covariance, residual scale, effective-batch rule), a summary of the
training data and the library version. Loading validates the file (keys, format version,
finite numbers, known class) and never executes code from it: classes are looked up in a
registry of :class:`~energylens.models.base.ParametricModel` subclasses, and expressions
are re-parsed by a whitelisting parser.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..exceptions import ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "save_model", "load_model", "model_to_dict", "model_from_dict"]

FORMAT = "energylens.model"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "energylens_version", "class", "init_params",
             "formula", "parameters", "fit", "extra")
_REQUIRED_FIT = ("free", "cov", "sigma", "n", "batch_rule", "batch_k", "success", "rank")
_REQUIRED_PARAM = ("name", "value", "stderr", "lower", "upper", "unit", "meaning", "fixed")


def _num(x: float) -> float | str | None:
    """JSON-safe number: +-inf as strings, NaN as null."""
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    raise ModelFileError(f"Cannot store a value of type {type(obj).__name__} in a model file.")


def model_to_dict(model) -> dict:
    """The JSON-ready content of a fitted model's file."""
    model._check_fitted()
    st = model._state_
    P = model.params_
    params = []
    for name, r in P.iterrows():
        params.append({
            "name": name, "value": _num(r["value"]), "stderr": _num(r["stderr"]),
            "lower": _num(r["lower"]), "upper": _num(r["upper"]), "unit": r["unit"],
            "meaning": r["meaning"], "fixed": bool(r["fixed"]),
            "identifiable": bool(r["identifiable"]), "note": r["note"],
        })
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "energylens_version": __version__,
        "class": type(model).__name__,
        "init_params": _jsonable(model.get_params(deep=False)),
        "formula": model.formula if isinstance(model.formula, str) else str(model.formula),
        "parameters": params,
        "fit": _jsonable({
            "free": st.free.tolist(), "cov": st.cov.tolist() if st.cov is not None else [],
            "sigma": st.sigma, "n": st.n, "nfev": st.nfev, "success": st.success,
            "message": str(st.message), "rank": st.rank, "cost": st.cost,
            "fit_time_s": st.fit_time_s, "batch_rule": st.batch_rule, "batch_k": st.batch_k,
            "batch_k_stderr": st.batch_k_stderr, "not_identifiable": st.not_identifiable,
            "mape_pct": st.mape_pct,
        }),
        "training_summary": _jsonable(st.training_summary),
        "extra": _jsonable(model._get_extra_state()),
    }


def save_model(model, path: str | os.PathLike) -> Path:
    """Write a fitted model to ``path`` as JSON; returns the path."""
    path = Path(path)
    text = json.dumps(model_to_dict(model), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} is not allowed")


def _fnum(x, where: str, *, allow_null=False, allow_inf=False) -> float:
    if x is None and allow_null:
        return float("nan")
    if isinstance(x, str) and allow_inf and x in ("inf", "-inf"):
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ModelFileError(f"{where}: expected a number, got {x!r}.")
    x = float(x)
    if not math.isfinite(x):
        raise ModelFileError(f"{where}: expected a finite number, got {x!r}.")
    return x


def model_from_dict(data: dict, *, where: str = "<dict>"):
    """Rebuild a fitted model from :func:`model_to_dict` content (validated)."""
    from .base import ParametricModel, _FitState

    if not isinstance(data, dict):
        raise ModelFileError(f"Model file {where}: expected a JSON object at the top level.")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ModelFileError(f"Model file {where}: missing key(s) {missing}.")
    if data["format"] != FORMAT:
        raise ModelFileError(f"Model file {where}: 'format' is {data['format']!r}, expected {FORMAT!r}.")
    version = data["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(
            f"Model file {where}: unsupported format_version {version!r}; this energylens "
            f"({__version__}) reads versions 1 to {FORMAT_VERSION}."
        )
    registry = ParametricModel._registry()
    cls = registry.get(data["class"])
    if cls is None:
        raise ModelFileError(
            f"Model file {where}: unknown model class {data['class']!r}; known classes are "
            f"{sorted(registry)}."
        )
    init_params = data["init_params"]
    if not isinstance(init_params, dict):
        raise ModelFileError(f"Model file {where}: 'init_params' must be an object.")
    try:
        model = cls._from_extra_state(init_params, data["extra"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"Model file {where}: cannot rebuild {data['class']}: {exc}") from exc
    specs = model._param_specs()
    params = data["parameters"]
    if not isinstance(params, list) or len(params) != len(specs):
        raise ModelFileError(
            f"Model file {where}: expected {len(specs)} parameters for {data['class']}, got "
            f"{len(params) if isinstance(params, list) else type(params).__name__}."
        )
    coef, lo, hi = [], [], []
    for spec, p in zip(specs, params):
        if not isinstance(p, dict) or any(k not in p for k in _REQUIRED_PARAM):
            raise ModelFileError(f"Model file {where}: parameter entry {p!r} lacks keys "
                                 f"{list(_REQUIRED_PARAM)}.")
        if p["name"] != spec.name:
            raise ModelFileError(f"Model file {where}: parameter {p['name']!r} found where "
                                 f"{spec.name!r} was expected.")
        coef.append(_fnum(p["value"], f"Model file {where}: parameter {spec.name} value"))
        lo.append(_fnum(p["lower"], f"Model file {where}: parameter {spec.name} lower", allow_inf=True))
        hi.append(_fnum(p["upper"], f"Model file {where}: parameter {spec.name} upper", allow_inf=True))
    fit = data["fit"]
    if not isinstance(fit, dict) or any(k not in fit for k in _REQUIRED_FIT):
        raise ModelFileError(f"Model file {where}: 'fit' must hold keys {list(_REQUIRED_FIT)}.")
    free = np.asarray(fit["free"], dtype=bool)
    if free.shape != (len(specs),):
        raise ModelFileError(f"Model file {where}: 'fit.free' must have {len(specs)} entries.")
    k = int(free.sum())
    try:
        cov = np.asarray(fit["cov"], dtype=float).reshape(k, k) if k else np.zeros((0, 0))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"Model file {where}: 'fit.cov' must be a {k}x{k} matrix.") from exc
    if not np.all(np.isfinite(cov)):
        raise ModelFileError(f"Model file {where}: 'fit.cov' holds non-finite numbers.")
    batch_k = fit["batch_k"]
    state = _FitState(
        free=free,
        not_identifiable=dict(fit.get("not_identifiable") or {}),
        cov=cov,
        sigma=_fnum(fit["sigma"], f"Model file {where}: fit.sigma"),
        n=int(_fnum(fit["n"], f"Model file {where}: fit.n")),
        nfev=int(fit.get("nfev") or 0),
        success=bool(fit["success"]),
        message=str(fit.get("message", "")),
        rank=int(_fnum(fit["rank"], f"Model file {where}: fit.rank")),
        cost=_fnum(fit.get("cost", 0.0), f"Model file {where}: fit.cost"),
        fit_time_s=float(fit.get("fit_time_s") or 0.0),
        batch_rule=str(fit["batch_rule"]),
        batch_k=None if batch_k is None else _fnum(batch_k, f"Model file {where}: fit.batch_k"),
        batch_k_stderr=fit.get("batch_k_stderr"),
        mape_pct=float("nan") if fit.get("mape_pct") is None else float(fit["mape_pct"]),
        training_summary=dict(data.get("training_summary") or {}),
    )
    from .batch import BATCH_RULES

    if state.batch_rule not in BATCH_RULES:
        raise ModelFileError(f"Model file {where}: unknown batch rule {state.batch_rule!r}.")
    model.coef_ = np.asarray(coef)
    model._lo_, model._hi_ = np.asarray(lo), np.asarray(hi)
    model._state_ = state
    model.n_features_in_ = len(model._variables_for_n_features())
    model.at_bound_ = model._at_bound(model.coef_, model._lo_, model._hi_, free)
    return model


def load_model(path: str | os.PathLike):
    """Load a model saved with ``model.save(path)``.

    The file is validated (keys, format version, finite numbers, known class) and no code
    from it is executed.

    Raises
    ------
    ModelFileError
        If the file is missing keys, has an unsupported version, holds NaN or infinite
        numbers where finite ones are required, or names an unknown class.

    Examples
    --------
    >>> import energylens  # doctest: +SKIP
    >>> model.save("model.json"); energylens.load_model("model.json")  # doctest: +SKIP
    """
    path = Path(path)
    where = f"'{path}'"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"Cannot read model file {where}: {exc}") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ModelFileError(f"Model file {where} is not valid JSON: {exc}") from exc
    return model_from_dict(data, where=where)
