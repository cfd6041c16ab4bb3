"""Saving fitted models as versioned JSON, and loading them back safely.

A model file holds the class name, the constructor arguments of the fit, every parameter (value,
standard error, bounds, unit, meaning, flags), the formula as text, the fit state needed
for predictions and intervals (covariance, residual scale, effective-batch rule, training
domain) and the library version. A grouped model is a folder: one model file per group,
named after the group, and ``groups.json`` listing them with the grouped model's own
constructor arguments (its estimator's class and arguments included; folders written
before version 2 of the index restore ``by`` only).

JSON has no NaN: a number that is legitimately undefined after a fit (the covariance and
the residual scale of a fit without residual degrees of freedom) is written as ``null`` and
read back as NaN; infinities are written as the strings ``"inf"`` and ``"-inf"``.

Loading validates everything (keys, versions, types, finite numbers, parameters within
their bounds, finite non-negative predictions over the training domain) and never executes
code from the file: classes are looked up in a registry by name, expressions are re-parsed
by a whitelisting parser, and files named in ``groups.json`` must lie inside its folder.
Every write is atomic, and a save replaces only a file (or writes only into a folder) that
energylens wrote, unless forced (:mod:`energylens.core.io`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from .._version import __version__
from ..core.io import atomic_write, check_file_output, check_folder_output, energylens_format
from ..exceptions import ModelFileError
from . import registry
from .parameters import resolve
from .state import FitState, json_number, read_number

__all__ = ["FORMAT", "FORMAT_VERSION", "GROUPED_FORMAT", "save_model", "load_model",
           "model_to_dict", "model_from_dict", "save_grouped", "load_grouped"]

FORMAT = "energylens.model"
FORMAT_VERSION = 2
GROUPED_FORMAT = "energylens.grouped"
GROUPED_VERSION = 2
#: Largest model file read (bytes): a model file is a few kilobytes.
MAX_FILE_BYTES = 20_000_000
_REQUIRED = ("format", "format_version", "energylens_version", "class", "init_params",
             "formula", "parameters", "fit", "extra")


def _jsonable(obj, where: str = "value"):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, where) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, where) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return json_number(obj)
    if obj is None or isinstance(obj, (str, int)):
        return obj
    raise ModelFileError(f"Cannot store a {type(obj).__name__} ({where}) in a model file.")


def model_to_dict(model) -> dict:
    """The JSON-ready content of a fitted closed form's file."""
    from .report import params_table

    model._check_fitted()
    P = params_table(model)
    params = [{"name": name, "value": json_number(r["value"]), "stderr": json_number(r["stderr"]),
               "lower": json_number(r["lower"]), "upper": json_number(r["upper"]), "unit": r["unit"],
               "meaning": r["meaning"], "fixed": bool(r["fixed"]),
               "identifiable": bool(r["identifiable"]), "note": r["note"]}
              for name, r in P.iterrows()]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "energylens_version": __version__,
        "class": type(model).__name__,
        "init_params": _jsonable(_fitted_params(model), "constructor argument"),
        "formula": str(model.formula), "parameters": params,
        "fit": model._state_.to_dict(),
        "extra": _jsonable(model._get_extra_state(), "model state"),
    }


def _fitted_params(model) -> dict:
    """The constructor arguments the model was fitted with (see
    :class:`~energylens.models.settings.FittedParams`)."""
    return dict(getattr(model, "fitted_params_", None) or model.get_params(deep=False))


def _estimator_to_json(est, where: str):
    """An unfitted estimator as its class name and constructor arguments (None and strings
    as themselves)."""
    if est is None or isinstance(est, str):
        return est
    if registry.lookup(type(est).__name__) is not type(est):
        raise ModelFileError(f"Cannot store a {type(est).__name__} ({where}) in a model file: only "
                             f"energylens models can be; known classes are {registry.known()}.")
    return {"class": type(est).__name__,
            "init_params": _jsonable(est.get_params(deep=False), f"{where} argument")}


def _estimator_from_json(entry, where: str):
    """Rebuild (unfitted) what :func:`_estimator_to_json` wrote; checked."""
    if entry is None or isinstance(entry, str):
        return entry
    ok = isinstance(entry, dict) and isinstance(entry.get("class"), str) and isinstance(
        entry.get("init_params"), dict)
    cls = registry.lookup(entry["class"]) if ok else None
    if cls is None:
        raise ModelFileError(f"{where}: an estimator must be given as its known 'class' and its "
                             f"'init_params'; got {entry!r:.200}; known classes are {registry.known()}.")
    params = dict(entry["init_params"])
    try:
        if hasattr(cls, "_from_extra_state"):
            est = cls._from_extra_state(params, {})
        else:
            unknown = set(params) - set(cls().get_params(deep=False))
            if unknown:
                raise ValueError(f"unknown constructor arguments {sorted(unknown)}")
            est = cls(**params)
        est._validate_params()
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{where}: cannot rebuild {entry['class']}: {exc}") from exc
    return est


def _envelope(data, where: str) -> type:
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
            f"({__version__}) reads versions 1 to {FORMAT_VERSION}.")
    cls = registry.lookup(data["class"]) if isinstance(data["class"], str) else None
    if cls is None or not (hasattr(cls, "_restore") or hasattr(cls, "_from_model_file")):
        raise ModelFileError(f"Model file {where}: unknown model class {data['class']!r}; known "
                             f"classes are {registry.known()}.")
    if not isinstance(data["init_params"], dict) or not isinstance(data["extra"], dict):
        raise ModelFileError(f"Model file {where}: 'init_params' and 'extra' must be objects.")
    return cls


def _coefficients(model, params, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    specs = model._param_specs()
    if not isinstance(params, list) or len(params) != len(specs):
        raise ModelFileError(f"Model file {where}: expected {len(specs)} parameters for "
                             f"{type(model).__name__}.")
    res = resolve(specs, fixed=model._setting("fixed"), bounds=model._setting("bounds"))
    coef = []
    for i, (spec, p) in enumerate(zip(specs, params)):
        if not isinstance(p, dict) or "value" not in p:
            raise ModelFileError(f"Model file {where}: parameter {i} ({spec.name}) must be an "
                                 "object with a value.")
        if p.get("name") != spec.name:
            raise ModelFileError(f"Model file {where}: parameter {p.get('name')!r} found where "
                                 f"{spec.name!r} was expected.")
        v = read_number(p["value"], f"Model file {where}: parameter {spec.name}")
        lo, hi = res.lower[i], res.upper[i]
        tol = 1e-9 * max(1.0, abs(v))
        if not lo - tol <= v <= hi + tol:
            raise ModelFileError(f"Model file {where}: parameter {spec.name} = {v!r} lies outside "
                                 f"its bounds [{lo:g}, {hi:g}].")
        coef.append(v)
    return np.asarray(coef, dtype=float), res.lower, res.upper


def _check_predictions(model, where: str) -> None:
    """The loaded parameters must give finite predictions at the corners of the training
    domain, and non-negative ones for forms that are non-negative by construction (every
    parameter bounded below by zero or a positive overhead factor)."""
    ranges = model._state_.domain.ranges
    names = model._model_variables()
    if not ranges or any(v not in ranges for v in names):
        return
    corners = np.array(np.meshgrid(*[ranges[v] for v in names], indexing="ij")).reshape(len(names), -1)
    V = {v: corners[i] for i, v in enumerate(names)}
    with np.errstate(all="ignore"):
        f = model._kernel(V, model.coef_)
    nonneg = bool(np.all(model._lo_ >= 0))
    if not np.all(np.isfinite(f) & ((f >= 0) | (not nonneg))):
        raise ModelFileError(f"Model file {where}: its parameters give negative or non-finite "
                             "predictions inside the training domain; the file is corrupt or was edited.")


def model_from_dict(data, *, where: str = "<dict>"):
    """Rebuild a fitted model from :func:`model_to_dict` content (validated)."""
    cls = _envelope(data, where)
    if hasattr(cls, "_from_model_file"):  # a model with its own file content (hierarchical)
        return cls._from_model_file(data, where)
    try:
        model = cls._from_extra_state(data["init_params"], data["extra"])
        model._validate_params()
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"Model file {where}: cannot rebuild {data['class']}: {exc}") from exc
    coef, lo, hi = _coefficients(model, data["parameters"], where)
    state = FitState.from_dict(data["fit"], len(coef), where=f"Model file {where}")
    model._restore(coef, lo, hi, state)
    _check_predictions(model, where)
    return model


def save_model(model, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a fitted model to ``path`` as JSON, atomically; returns the path.

    An existing energylens model file at ``path`` is replaced; any other existing file only
    with ``force=True`` (otherwise :class:`FileExistsError`), and a folder never
    (:class:`IsADirectoryError`). A :class:`~energylens.GroupedModel` is written to a folder
    instead (:func:`save_grouped`).
    """
    if hasattr(model, "models_"):
        return save_grouped(model, path, force=force)
    if hasattr(type(model), "_from_model_file"):  # writes its own file content
        return model.save(path, force=force)
    text = json.dumps(model_to_dict(model), indent=2, allow_nan=False)
    return atomic_write(check_file_output(path, kind=FORMAT, force=force), text + "\n")


def _read_json(path: Path, what: str):
    where = f"'{path}'"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ModelFileError(f"{what} {where} is larger than {MAX_FILE_BYTES} bytes: not a model file.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"Cannot read {what.lower()} {where}: {exc}") from exc

    def reject(name):
        raise ValueError(f"non-finite number {name} is not allowed")

    try:
        return json.loads(text, parse_constant=reject)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{what} {where} is not valid JSON: {exc}") from exc


def load_model(path: str | os.PathLike):
    """Load a model saved with ``model.save(path)`` (a file, or a grouped model's folder).

    The file is validated (keys, format version, finite numbers, parameters within bounds,
    known class) and no code from it is executed.

    Raises
    ------
    ModelFileError
        If the file is missing keys, has an unsupported version, holds bad numbers, or
        names an unknown class.

    Examples
    --------
    >>> import energylens  # doctest: +SKIP
    >>> model.save("model.json"); energylens.load_model("model.json")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        return load_grouped(path)
    return model_from_dict(_read_json(path, "Model file"), where=f"'{path}'")


# --------------------------------------------------------------------------- grouped folders
def _file_name(key: tuple, taken: set[str]) -> str:
    stem = "__".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", "blank" if k is None else str(k)).strip("-.")
                     or "x" for k in key)
    stem = (stem or "all")[:120]
    name, i = f"{stem}.json", 2
    while name.lower() in taken or name == "groups.json":
        name, i = f"{stem}-{i}.json", i + 1
    taken.add(name.lower())
    return name


def save_grouped(model, directory: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a fitted :class:`~energylens.GroupedModel` to a folder (created if needed).

    Each group's model goes to a file named after the group (``Llama-3.1-8B__H100-SXM.json``)
    and ``groups.json`` lists the groups, their files and the fallback model. The folder must
    be absent, empty or a grouped model's folder, and each file it writes absent or an
    energylens file of its kind; anything else only with ``force=True`` (otherwise
    :class:`FileExistsError`, before anything is written). An existing file at ``directory``
    is never replaced (:class:`NotADirectoryError`).
    """
    directory = check_folder_output(directory, index="groups.json", kind=GROUPED_FORMAT,
                                    what="grouped model", force=force)
    params = _grouped_params(model)  # refused before anything is written
    taken: set[str] = set()
    files = [(_file_name(key, taken), m) for key, m in model.models_.items()]
    fallback = None
    if getattr(model, "fallback_", None) is not None:
        fallback = _file_name(("fallback",), taken)
        files.append((fallback, model.fallback_))
    if directory.is_dir():  # refuse before writing anything
        for fname, _ in files:
            check_file_output(directory / fname, kind=FORMAT, force=force)
        check_file_output(directory / "groups.json", kind=GROUPED_FORMAT, what="grouped model",
                          force=force)
    stale = _indexed_files(directory) - {fname for fname, _ in files}
    directory.mkdir(parents=True, exist_ok=True)
    for fname, m in files:
        save_model(m, directory / fname, force=force)
    entries = [{"key": _jsonable(list(key), "group key"), "file": fname}
               for key, (fname, _) in zip(model.models_, files)]
    index = {"format": GROUPED_FORMAT, "format_version": GROUPED_VERSION,
             "energylens_version": __version__, "by": list(model.by_), "groups": entries,
             "fallback": fallback, "init_params": params,
             "groups_table": _jsonable(model.groups_.to_dict(orient="list"), "group table")}
    atomic_write(directory / "groups.json", json.dumps(index, indent=2, allow_nan=False) + "\n")
    for fname in stale:  # groups of the model saved here before that this one does not have
        if energylens_format(directory / fname) == FORMAT:
            (directory / fname).unlink()
    return directory


def _grouped_params(model) -> dict:
    """A grouped model's constructor arguments of the fit, JSON-ready."""
    params = _fitted_params(model)
    for key in ("estimator", "fallback"):
        params[key] = _estimator_to_json(params.get(key), f"GroupedModel {key}")
    return _jsonable(params, "constructor argument")


def _grouped_from_json(raw, where: str) -> dict | None:
    """The constructor arguments of a grouped model's index (None for an index that predates
    them), rebuilt and checked."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{where}: 'init_params' must be an object.")
    params = dict(raw)
    for key in ("estimator", "fallback"):
        params[key] = _estimator_from_json(params.get(key), f"{where}: init_params.{key}")
    if isinstance(params.get("by"), list):
        params["by"] = tuple(params["by"])
    return params


def _indexed_files(directory: Path) -> set[str]:
    """The plain file names an existing ``groups.json`` in ``directory`` lists (none when
    there is no such index or it cannot be read)."""
    try:
        index = json.loads((directory / "groups.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    if not isinstance(index, dict) or index.get("format") != GROUPED_FORMAT:
        return set()
    names = [g.get("file") for g in index.get("groups", []) if isinstance(g, dict)]
    names.append(index.get("fallback"))
    out = set()
    for name in names:
        try:
            _inside(directory, name, "groups.json")  # a plain name inside the folder, as loading asks
        except ModelFileError:
            continue
        if name != "groups.json":
            out.add(name)
    return out


def _inside(directory: Path, name, where: str) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ModelFileError(f"{where}: file entry {name!r} must be a plain file name in the folder.")
    path = directory / name
    root = directory.resolve()
    if root not in path.resolve().parents:
        raise ModelFileError(f"{where}: file entry {name!r} points outside the folder.")
    return path


def load_grouped(directory: str | os.PathLike):
    """Load a folder written by :func:`save_grouped` (validated like a model file)."""
    directory = Path(directory)
    where = f"'{directory / 'groups.json'}'"
    if not (directory / "groups.json").is_file():
        raise ModelFileError(f"'{directory}' is a folder without groups.json; pass a model file or "
                             "a folder written by GroupedModel.save().")
    index = _read_json(directory / "groups.json", "Grouped-model index")
    ok = (isinstance(index, dict) and index.get("format") == GROUPED_FORMAT
          and isinstance(index.get("by"), list) and all(isinstance(b, str) for b in index["by"])
          and isinstance(index.get("groups"), list))
    if not ok:
        raise ModelFileError(f"{where}: expected format {GROUPED_FORMAT!r} with 'by' (column names) "
                             "and 'groups' (a list).")
    version = index.get("format_version")
    if isinstance(version, bool) or version not in range(1, GROUPED_VERSION + 1):
        raise ModelFileError(f"{where}: unsupported format_version {version!r}; this energylens "
                             f"({__version__}) reads versions 1 to {GROUPED_VERSION}.")
    models = {}
    for e in index["groups"]:
        if not isinstance(e, dict) or not isinstance(e.get("key"), list) or len(e["key"]) != len(index["by"]):
            raise ModelFileError(f"{where}: each group needs a 'key' with one value per 'by' column.")
        if not all(isinstance(k, (str, int, float, bool)) or k is None for k in e["key"]):
            raise ModelFileError(f"{where}: group keys hold plain values only; got {e['key']!r}.")
        models[tuple(e["key"])] = load_model(_inside(directory, e.get("file"), where))
    fallback = index.get("fallback")
    fallback = None if fallback is None else load_model(_inside(directory, fallback, where))
    cls = registry.lookup("GroupedModel")
    params = _grouped_from_json(index.get("init_params") if version >= 2 else None, where)
    return cls._from_saved(index["by"], models, fallback, _numeric_columns(index.get("groups_table")),
                           where, params)


def _numeric_columns(table):
    """The group table with its number columns as floats: ``null`` is NaN and ``"inf"`` is
    infinity, as :func:`json_number` wrote them (pandas would keep ``None`` and the strings
    in an object column, and a column of nothing but NaN would come back as ``None``)."""
    if not isinstance(table, dict):
        return table

    def number(v):
        return v is None or v in ("inf", "-inf") or (
            isinstance(v, (int, float)) and not isinstance(v, bool))

    out = {}
    for col, values in table.items():
        if (isinstance(values, list) and all(number(v) for v in values)
                and any(v is None or v in ("inf", "-inf") for v in values)
                and not all(isinstance(v, str) for v in values)):
            try:
                values = [np.nan if v is None else float(v) for v in values]
            except OverflowError:  # an edited file: keep the column as written
                pass
        out[col] = values
    return out
