"""Model files of the hierarchical model: versioned JSON, validated on load.

The file shares the envelope of every energylens model file (``format``, ``class``,
``init_params``, ``formula``, ``parameters``, ``fit``, ``extra``;
:mod:`energylens.models.persistence`), so :func:`energylens.load_model` reads it. ``extra``
holds what predictions need: the layout of the unknowns (levels, their values and columns,
groups, workloads), the fitted values, the spreads, the posterior in block form and the
parameters fitted through a bounded link (``upper``: since file version 2, where it must be
:data:`~.form.UPPER` exactly; a version-1 file fitted every parameter as its logarithm and
loads so, predicting as it did). The
large float arrays are stored as their exact float64 bytes in base64 (symmetric matrices by
their upper triangle), so a loaded model predicts bit for bit what the saved one did and a
model of a thousand groups stays near 13 MB. Loading checks every entry (types, sizes,
finite numbers, indices in range, a covariance with a non-negative diagonal): a tampered
file is a :class:`~energylens.ModelFileError`, never a wrong prediction.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..._version import __version__
from ...core.domain import Domain
from ...core.io import atomic_write, check_file_output
from ...exceptions import ModelFileError
from ..settings import snapshot
from .design import Design, Level
from .form import FORMULA, PARAMETER_NAMES, TERMS, UPPER
from .pooling import Layout, Posterior
from .ranges import GROUP_VARIABLES

__all__ = ["model_to_file", "save_hierarchical", "model_from_file", "FILE_VERSION"]

#: Version of the ``extra`` content written by this module (2: ``upper``, the bounded
#: parameters; version 1 files are read with none).
FILE_VERSION = 2
#: Versions of the ``extra`` content this module reads.
READ_VERSIONS = (1, 2)
#: Largest absolute log-parameter a file may hold (e**50 is beyond any physical value).
MAX_LOG = 50.0


def _num(x):
    if isinstance(x, np.ndarray):
        return [_num(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


def _pack(a: np.ndarray, symmetric: bool = False) -> dict:
    """A float array as exact little-endian float64 bytes in base64 (a symmetric matrix, or a
    stack of them, by its upper triangle): about a third of the size of decimal text."""
    a = np.asarray(a, dtype=float)
    shape = list(a.shape)
    if symmetric:
        iu = np.triu_indices(a.shape[-1])
        a = a[..., iu[0], iu[1]]
    data = base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")
    return {"shape": shape, "symmetric": symmetric, "float64": data}


def _design_dict(d: Design) -> dict:
    return {"levels": [{"columns": list(lv.columns), "names": list(lv.names), "values": lv.values,
                        "local": lv.local, "col": _num(lv.col)} for lv in d.levels],
            "workloads": d.workloads, "groups": d.groups, "n_global": d.n_global,
            "block_start": _num(d.block_start), "block_size": _num(d.block_size),
            "kind": list(d.kind), "level": _num(d.level), "param": _num(d.param), "value": d.value,
            "slot_level": _num(d.slot_level), "slot_param": _num(d.slot_param),
            "slot_local": _num(d.slot_local), "prior_mean": _pack(d.prior_mean),
            "prior_sd": _num(d.prior_sd)}


def model_to_file(model) -> dict:
    """The JSON-ready content of a fitted model's file."""
    model._check_fitted()
    P = model.params_
    post, lay = model.posterior_, model.layout_
    params = [{"name": name, "value": float(r["value"]), "stderr": float(r["stderr"]),
               "unit": r["unit"], "meaning": r["meaning"], "identifiable": bool(r["identifiable"]),
               "note": r["note"]} for name, r in P.iterrows()]
    dof = float(getattr(model, "sigma_dof_", np.inf))  # a pickle from before the entry: normal
    fit = {"sigma": float(model.sigma_), "sigma_dof": dof if math.isfinite(dof) else None,
           "n_train": int(model.n_train_),
           "structure": model.structure_, "converged": bool(model.converged_),
           "train_mape": float(model.train_mape_), "fit_time_s": float(model.fit_time_s_),
           "phases": int(model.phases_), "request_counts": bool(getattr(model, "request_counts_", True)),
           "n_chunks": int(model.n_chunks_),
           "log_evidence": float(model.log_evidence_), "group_columns": list(model.group_columns_),
           "terms": dict(model.terms_), "gpus": list(model.gpus_), "n_features_in": model.n_features_in_,
           "domain": model.domain_.to_dict()}
    if getattr(model, "assumed_input_tokens_", None) is not None:
        fit["assumed_input_tokens"] = {k: list(v) for k, v in model.assumed_input_tokens_.items()}
    if getattr(model, "new_model_scores_", None) is not None:
        fit["new_model_scores"] = [float(v) for v in model.new_model_scores_]
    groups = model._groups_table.reset_index()
    extra = {"version": FILE_VERSION, "upper": {k: float(v) for k, v in model.upper_.items()},
             "design": _design_dict(model.design_), "coef": _pack(model.coef_),
             "tau": [[lv, name, float(t)] for (lv, name), t in model.tau_map_.items()],
             "layout": {"local": _num(lay.local), "touched": _num(lay.touched)},
             "posterior": {"cov_global": _pack(post.cov_global, True),
                           "local_inv": _pack(post.local_inv, True),
                           "coupling": _pack(post.coupling), "diag": _pack(post.diag),
                           "logdet": float(post.logdet)},
             "groups_table": {c: _num(groups[c].to_numpy()) if groups[c].dtype.kind in "fiub"
                              else groups[c].astype(str).tolist() for c in groups.columns}}
    if getattr(model, "group_ranges_", None) is not None:
        extra["group_ranges"] = _num(model.group_ranges_)
    params_init = {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in (getattr(model, "fitted_params_", None)
                                or model.get_params(deep=False)).items()}
    if not isinstance(params_init["levels"], str):
        params_init["levels"] = [[list(c), list(n)] for c, n in params_init["levels"]]
    return {"format": "energylens.model", "format_version": 2, "energylens_version": __version__,
            "class": type(model).__name__, "init_params": params_init, "formula": FORMULA,
            "parameters": params, "fit": fit, "extra": extra}


def save_hierarchical(model, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a fitted model to ``path`` as JSON, atomically; returns the path.

    Replaces an existing energylens model file, any other file only with ``force=True``.
    """
    text = json.dumps(model_to_file(model), allow_nan=False)
    return atomic_write(check_file_output(path, kind="energylens.model", force=force), text + "\n")


# --------------------------------------------------------------------------- reading
class _Reader:
    """Checked access to a file's content; every failure names the file and the entry."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"Model file {self.where}: {what}; the file is corrupt or was edited.")

    def get(self, d, key, kind=None):
        if not isinstance(d, dict) or key not in d:
            raise self.fail(f"missing entry {key!r}")
        v = d[key]
        if kind is not None and not isinstance(v, kind):
            raise self.fail(f"entry {key!r} must be a {getattr(kind, '__name__', kind)}")
        return v

    def array(self, d, key, dtype, ndim, *, nullable=False, shape=None) -> np.ndarray:
        raw = self.get(d, key)
        if dtype is bool and not (isinstance(raw, list) and all(isinstance(v, bool) for v in raw)):
            raise self.fail(f"entry {key!r} must be a list of true/false values")
        if dtype is not bool and not _numbers(raw, nullable):
            raise self.fail(f"entry {key!r} must be an array of numbers")
        try:
            if nullable and isinstance(raw, list):
                raw = [np.nan if v is None else v for v in raw]
            a = np.asarray(raw, dtype=dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"entry {key!r} must be an array of numbers ({exc})") from exc
        if a.ndim != ndim and not (a.size == 0 and ndim > 1):
            raise self.fail(f"entry {key!r} must have {ndim} dimension(s)")
        if dtype is float and not nullable and not np.all(np.isfinite(a)):
            raise self.fail(f"entry {key!r} holds non-finite numbers")
        if dtype is int and isinstance(raw, list) and not _ints(raw):
            raise self.fail(f"entry {key!r} must hold whole numbers")
        if shape is not None and a.size and a.shape != shape:
            raise self.fail(f"entry {key!r} has shape {a.shape}, expected {shape}")
        return a.reshape(shape) if (shape is not None and a.size == 0) else a


def _numbers(raw, nullable: bool) -> bool:
    if isinstance(raw, list):
        return all(_numbers(v, nullable) for v in raw)
    return (raw is None and nullable) or (isinstance(raw, (int, float)) and not isinstance(raw, bool))


def _unpack(R: _Reader, d, key, shape: tuple | None = None) -> np.ndarray:
    """A float array written by :func:`_pack`, checked (shape, length, finite values)."""
    item = R.get(d, key, dict)
    dims, sym, data = item.get("shape"), item.get("symmetric"), item.get("float64")
    if not (isinstance(dims, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                           and x >= 0 for x in dims)
            and isinstance(sym, bool) and isinstance(data, str)):
        raise R.fail(f"entry {key!r} must hold a shape, a symmetric flag and float64 data")
    if shape is not None and tuple(dims) != tuple(shape):
        raise R.fail(f"entry {key!r} has shape {tuple(dims)}, expected {tuple(shape)}")
    if sym and (len(dims) < 2 or dims[-1] != dims[-2]):
        raise R.fail(f"entry {key!r} is marked symmetric but is not square")
    n = dims[-1] if sym else 0
    stored = (int(np.prod(dims[:-2])) * n * (n + 1) // 2) if sym else int(np.prod(dims))
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise R.fail(f"entry {key!r} is not base64 data") from exc
    if len(raw) != 8 * stored:
        raise R.fail(f"entry {key!r} holds {len(raw)} bytes, expected {8 * stored}")
    vals = np.frombuffer(raw, dtype="<f8").astype(float)
    if not np.all(np.isfinite(vals)):
        raise R.fail(f"entry {key!r} holds non-finite numbers")
    if not sym:
        return vals.reshape(dims)
    out = np.zeros(dims)
    iu = np.triu_indices(n)
    out[..., iu[0], iu[1]] = vals.reshape(*dims[:-2], -1)
    out[..., iu[1], iu[0]] = vals.reshape(*dims[:-2], -1)
    return out


def _ints(raw) -> bool:
    if isinstance(raw, list):
        return all(_ints(v) for v in raw)
    return isinstance(raw, int) and not isinstance(raw, bool)


def _read_design(R: _Reader, d: dict) -> Design:
    levels = []
    for item in R.get(d, "levels", list):
        cols, names = R.get(item, "columns", list), R.get(item, "names", list)
        values = R.get(item, "values", list)
        if not all(isinstance(x, str) for x in cols + names + values):
            raise R.fail("level columns, names and values must be strings")
        if any(n not in PARAMETER_NAMES for n in names):
            raise R.fail(f"unknown parameter in level names {names}")
        col = R.array(item, "col", int, 2, shape=(len(values), len(names)))
        levels.append(Level(tuple(cols), tuple(names), values, bool(R.get(item, "local", bool)), col))
    kind = R.get(d, "kind", list)
    if any(k not in ("pop", "wl", "re") for k in kind):
        raise R.fail("column kinds must be 'pop', 'wl' or 're'")
    C = len(kind)
    vals = {k: R.array(d, k, int, 1) for k in ("block_start", "block_size", "level", "param",
                                               "slot_level", "slot_param")}
    design = Design(levels, R.get(d, "workloads", list), R.get(d, "groups", list),
                    int(R.get(d, "n_global", int)), vals["block_start"], vals["block_size"],
                    np.asarray(kind, dtype=object), vals["level"], vals["param"],
                    R.get(d, "value", list), vals["slot_level"], vals["slot_param"],
                    R.array(d, "slot_local", bool, 1), _unpack(R, d, "prior_mean"),
                    R.array(d, "prior_sd", float, 1, nullable=True))
    _check_design(R, design, C)
    return design


def _check_design(R: _Reader, d: Design, C: int) -> None:
    K = len(PARAMETER_NAMES)
    sizes = [len(d.level), len(d.param), len(d.value), len(d.prior_mean), len(d.prior_sd)]
    if any(s != C for s in sizes):
        raise R.fail("column entries have different lengths")
    if len(d.slot_param) != len(d.slot_level) or len(d.slot_local) != len(d.slot_param):
        raise R.fail("slot entries have different lengths")
    if (d.param.size and (d.param.min() < 0 or d.param.max() >= K)) or (
            d.slot_param.size and (d.slot_param.min() < 0 or d.slot_param.max() >= K)):
        raise R.fail("parameter index out of range")
    if d.slot_level.size and d.slot_level.max() >= len(d.levels):
        raise R.fail("slot level index out of range")
    for lv in d.levels:
        if lv.col.size and (lv.col.min() < 0 or lv.col.max() >= C):
            raise R.fail("level column index out of range")
    if not 0 <= d.n_global <= C or len(d.block_start) != len(d.groups) != len(d.block_size):
        raise R.fail("inconsistent group blocks")
    if not np.all(np.isfinite(d.prior_mean)) or np.any(np.abs(d.prior_mean) > MAX_LOG):
        raise R.fail("prior means must be finite")


def _read_posterior(R: _Reader, d: dict, design: Design, lay: Layout) -> Posterior:
    P, C = design.n_global, design.n_columns
    G, c = lay.local.shape
    t = lay.touched.shape[1]
    cov = _unpack(R, d, "cov_global", (P, P))
    local_inv = _unpack(R, d, "local_inv")
    coupling = _unpack(R, d, "coupling")
    if local_inv.size and (local_inv.shape != (G, c, c) or coupling.shape != (G, c, t)):
        raise R.fail("local posterior blocks do not match the group layout")
    diag = _unpack(R, d, "diag", (C,))
    if np.any(np.diag(cov) < 0) or np.any(diag < 0):
        raise R.fail("the covariance must have a non-negative diagonal")
    if local_inv.size == 0:
        local_inv, coupling = np.zeros((G, 0, 0)), np.zeros((G, 0, t))
    return Posterior(cov, local_inv, coupling, diag, float(R.get(d, "logdet", (int, float))))


def model_from_file(cls, data: dict, where: str):
    """Rebuild a fitted model from :func:`model_to_file` content (validated).

    Examples
    --------
    >>> import tempfile, pathlib, energylens
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> t, _ = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> m = HierarchicalEnergyModel().fit(t)
    >>> path = m.save(pathlib.Path(tempfile.mkdtemp()) / "hier.json")
    >>> bool((energylens.load_model(path).predict(t) == m.predict(t)).all())
    True
    """
    R = _Reader(where)
    extra, fit = R.get(data, "extra", dict), R.get(data, "fit", dict)
    version = R.get(extra, "version", int)
    if version not in READ_VERSIONS:
        raise R.fail(f"unsupported hierarchical file version {version!r} (this energylens reads "
                     f"versions {list(READ_VERSIONS)}; a newer one wrote it?)")
    init = dict(R.get(data, "init_params", dict))
    if isinstance(init.get("levels"), list):
        init["levels"] = tuple((tuple(c), tuple(n)) for c, n in init["levels"])
    if isinstance(init.get("by"), list):
        init["by"] = tuple(init["by"])
    try:
        model = cls(**init)
        model._validate_params()
    except (TypeError, ValueError) as exc:
        raise R.fail(f"cannot rebuild {cls.__name__}: {exc}") from exc
    design = _read_design(R, R.get(extra, "design", dict))
    coef = _unpack(R, extra, "coef", (design.n_columns,))
    if np.any(np.abs(coef) > MAX_LOG):
        raise R.fail(f"log-parameters beyond +-{MAX_LOG:g}")
    lay_d = R.get(extra, "layout", dict)
    lay = Layout(design.n_global, R.array(lay_d, "local", int, 2), R.array(lay_d, "touched", int, 2))
    if lay.local.shape[0] != len(design.groups) or lay.local.max(initial=-1) >= design.n_columns:
        raise R.fail("the group layout does not match the columns")
    post = _read_posterior(R, R.get(extra, "posterior", dict), design, lay)
    _restore_fit(model, R, fit, extra, design, coef, lay, post)
    model.upper_ = _read_upper(R, extra) if version >= 2 else {}
    return model


def _group_ranges(R: _Reader, extra: dict, n_groups: int) -> np.ndarray | None:
    """Each group's measured ranges (:mod:`.ranges`); None in a file written before them."""
    if "group_ranges" not in extra:
        return None
    a = R.array(extra, "group_ranges", float, 3, nullable=True,
                shape=(n_groups, len(GROUP_VARIABLES), 2))
    given = np.isfinite(a)
    if (np.any(given[..., 0] != given[..., 1]) or np.any(a[given] <= 0)
            or np.any(a[..., 0] > a[..., 1])):
        raise R.fail("'extra.group_ranges' must hold positive (low, high) pairs, low <= high, "
                     "or null pairs")
    return a


def _read_upper(R: _Reader, extra: dict) -> dict[str, float]:
    """The parameters fitted through a bounded link, and their bounds: those of
    :data:`~.form.UPPER` exactly, the only ones this version writes (another bound would
    silently change every prediction of a pipelined row)."""
    raw = R.get(extra, "upper", dict)
    ok = all(k in PARAMETER_NAMES and isinstance(v, (int, float)) and not isinstance(v, bool)
             and math.isfinite(v) and v > 0 for k, v in raw.items())
    if not ok:
        raise R.fail("'extra.upper' must map parameter names to positive bounds")
    upper = {str(k): float(v) for k, v in raw.items()}
    if upper != UPPER:
        raise R.fail(f"'extra.upper' is {upper}, expected {UPPER} (the bounds a file of version "
                     f"{FILE_VERSION} is fitted with)")
    return upper


def _assumed_lengths(R: _Reader, fit: dict) -> dict[str, list[float]] | None:
    """The placeholder prompt lengths per workload (None where the file predates them)."""
    if "assumed_input_tokens" not in fit:
        return None
    raw = R.get(fit, "assumed_input_tokens", dict)
    ok = all(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                         and math.isfinite(x) for x in v)
             for v in raw.values())
    if not ok:
        raise R.fail("'fit.assumed_input_tokens' must map workloads to lists of numbers")
    return {str(k): [float(x) for x in v] for k, v in raw.items()}


def _scores(R: _Reader, fit: dict) -> np.ndarray | None:
    """The held-out models' scores of ``calibrate="models"`` (None where the fit has none)."""
    if "new_model_scores" not in fit:
        return None
    raw = R.get(fit, "new_model_scores", list)
    ok = raw and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                     and x >= 0 for x in raw)
    if not ok or any(b < a for a, b in zip(raw, raw[1:])):
        raise R.fail("'fit.new_model_scores' must be a sorted list of numbers >= 0")
    return np.asarray(raw, dtype=float)


def _restore_fit(model, R: _Reader, fit, extra, design, coef, lay, post) -> None:
    terms = R.get(fit, "terms", dict)
    if set(terms) != set(TERMS) or not all(isinstance(v, bool) for v in terms.values()):
        raise R.fail("'fit.terms' must give every term of the form as true/false")
    tau = {}
    for item in R.get(extra, "tau", list):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], (int, float))
                and item[2] > 0 and math.isfinite(item[2])):
            raise R.fail("spreads must be [level, parameter, positive number]")
        tau[(str(item[0]), str(item[1]))] = float(item[2])
    sigma = R.get(fit, "sigma", (int, float))
    if not (math.isfinite(sigma) and sigma > 0):
        raise R.fail("'fit.sigma' must be a positive number")
    try:
        domain = Domain.from_dict(R.get(fit, "domain", dict), f"Model file {R.where}: fit.domain")
        table = pd.DataFrame(R.get(extra, "groups_table", dict))
    except ValueError as exc:
        raise ModelFileError(str(exc)) from exc
    group_cols = R.get(fit, "group_columns", list)
    model.coef_, model.sigma_, model.design_, model.layout_ = coef, float(sigma), design, lay
    model.posterior_, model.tau_map_, model.terms_, model.domain_ = post, tau, terms, domain
    model.group_columns_ = [str(c) for c in group_cols]
    model.structure_ = str(R.get(fit, "structure", str))
    model.converged_ = bool(R.get(fit, "converged", bool))
    model.train_mape_ = float(R.get(fit, "train_mape", (int, float)))
    model.fit_time_s_ = float(R.get(fit, "fit_time_s", (int, float)))
    model.phases_ = int(R.get(fit, "phases", int))
    dof = fit.get("sigma_dof")  # absent or null: a normal quantile (files before the entry)
    if dof is not None and (isinstance(dof, bool) or not isinstance(dof, (int, float))
                            or not dof >= 1):
        raise R.fail("entry 'sigma_dof' must be a number >= 1 or null")
    model.sigma_dof_ = np.inf if dof is None else float(dof)
    # files written before these entries: a given n_requests was used; one chunk
    model.request_counts_ = bool(R.get(fit, "request_counts", bool) if "request_counts" in fit else True)
    model.n_chunks_ = int(R.get(fit, "n_chunks", int) if "n_chunks" in fit else 1)
    if model.n_chunks_ < 1 or isinstance(fit.get("n_chunks", 1), bool):
        raise R.fail("entry 'n_chunks' must be a count >= 1")
    if model.phases_ < 0 or isinstance(fit["phases"], bool):
        raise R.fail("entry 'phases' must be a count of rows")
    model.log_evidence_ = float(R.get(fit, "log_evidence", (int, float)))
    model.n_train_ = int(R.get(fit, "n_train", int))
    model.n_features_in_ = int(R.get(fit, "n_features_in", int))
    model.gpus_ = [str(g) for g in R.get(fit, "gpus", list)]
    model.assumed_input_tokens_ = _assumed_lengths(R, fit)
    model.new_model_scores_ = _scores(R, fit)
    model.fitted_params_ = snapshot(model)
    model.history_ = []
    missing = [c for c in model.group_columns_ if c not in table.columns]
    if missing or len(table) != len(design.groups):
        raise R.fail("the group table does not match the groups")
    model._groups_table = table.set_index(model.group_columns_)
    model.group_ranges_ = _group_ranges(R, extra, len(design.groups))
    if set(tau) != {(lv.label, n) for lv in design.levels for n in lv.names}:
        raise R.fail("the spreads do not match the levels")
