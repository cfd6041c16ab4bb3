"""What a fit learns besides the parameter values, and its safe (de)serialisation.

:class:`FitState` holds the free mask, the covariance, the residual scale, the effective
batch rule, the identifiability notes, the training domain and the fit statistics. It is
written to and read from plain JSON data by :meth:`FitState.to_dict` and
:meth:`FitState.from_dict`; the latter checks every entry (types, finite numbers, sizes),
so a tampered model file gives a :class:`~energylens.ModelFileError`, never a traceback
deep in a prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core.batch import BATCH_RULES
from ..core.domain import Domain
from ..exceptions import ModelFileError

__all__ = ["FitState", "json_number", "read_number"]


def json_number(x) -> float | str | None:
    """A JSON-safe number: +-inf as strings, NaN as null."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def read_number(x, where: str, *, allow_null: bool = False, allow_inf: bool = False,
                lower: float | None = None, integer: bool = False) -> float:
    """A number read from a model file, checked (raises :class:`ModelFileError`)."""
    if x is None and allow_null:
        return float("nan")
    if isinstance(x, str) and allow_inf and x in ("inf", "-inf"):
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ModelFileError(f"{where}: expected a number, got {x!r}.")
    try:
        v = float(x)
    except OverflowError as exc:
        raise ModelFileError(f"{where}: number too large.") from exc
    if not math.isfinite(v):
        raise ModelFileError(f"{where}: expected a finite number, got {x!r}.")
    if lower is not None and v < lower:
        raise ModelFileError(f"{where}: must be >= {lower:g}, got {x!r}.")
    if integer and v != int(v):
        raise ModelFileError(f"{where}: must be a whole number, got {x!r}.")
    return v


@dataclass
class FitState:
    """Everything a fit learns besides the parameter values."""

    free: np.ndarray
    not_identifiable: dict[str, str] = field(default_factory=dict)
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sigma: float = np.nan  # residual sd in the units of the loss (NaN: no degrees of freedom)
    n: int = 0
    nfev: int = 0
    success: bool = True
    message: str = ""
    rank: int = 0
    cost: float = np.nan
    fit_time_s: float = 0.0
    batch_rule: str = "cap"
    batch_k: float | None = None
    batch_k_stderr: float | None = None
    batch_k_at_bound: bool = False
    mape_pct: float = np.nan
    domain: Domain = field(default_factory=Domain)
    n_negative: int = 0  # training rows the fitted form gives a negative or non-finite energy

    @property
    def dof(self) -> int:
        """Residual degrees of freedom (rows minus free parameters)."""
        return int(self.n - int(self.free.sum()))

    def to_dict(self) -> dict:
        return {
            "free": [bool(v) for v in self.free],
            "cov": [[json_number(v) for v in row] for row in np.asarray(self.cov).tolist()],
            "sigma": json_number(self.sigma), "n": int(self.n), "nfev": int(self.nfev),
            "success": bool(self.success), "message": str(self.message), "rank": int(self.rank),
            "cost": json_number(self.cost), "fit_time_s": json_number(self.fit_time_s),
            "batch_rule": self.batch_rule, "batch_k": json_number(self.batch_k),
            "batch_k_stderr": json_number(self.batch_k_stderr),
            "batch_k_at_bound": bool(self.batch_k_at_bound),
            "not_identifiable": dict(self.not_identifiable),
            "mape_pct": json_number(self.mape_pct),
            "domain": self.domain.to_dict(),
            "n_negative": int(self.n_negative),
        }

    @classmethod
    def from_dict(cls, data: object, n_params: int, where: str) -> FitState:
        """Rebuild and check a state read from a model file."""
        if not isinstance(data, Mapping):
            raise ModelFileError(f"{where}: 'fit' must be an object.")
        need = ("free", "cov", "sigma", "n", "batch_rule", "batch_k", "success", "rank")
        missing = [k for k in need if k not in data]
        if missing:
            raise ModelFileError(f"{where}: 'fit' lacks key(s) {missing}.")
        free = data["free"]
        if not isinstance(free, list) or len(free) != n_params or not all(isinstance(v, bool) for v in free):
            raise ModelFileError(f"{where}: 'fit.free' must be a list of {n_params} true/false values.")
        free = np.asarray(free, dtype=bool)
        k = int(free.sum())
        cov = _matrix(data["cov"], k, f"{where}: 'fit.cov'")
        rule = data["batch_rule"]
        if rule not in BATCH_RULES or rule == "auto":
            raise ModelFileError(f"{where}: unknown batch rule {rule!r}.")
        k_val = data["batch_k"]
        batch_k = None if k_val is None else read_number(k_val, f"{where}: fit.batch_k")
        if rule == "saturating" and (batch_k is None or batch_k <= 0):
            raise ModelFileError(f"{where}: the saturating batch rule needs a positive fit.batch_k; "
                                 f"got {k_val!r}.")
        notes = data.get("not_identifiable") or {}
        if not isinstance(notes, Mapping) or not all(
                isinstance(a, str) and isinstance(b, str) for a, b in notes.items()):
            raise ModelFileError(f"{where}: 'fit.not_identifiable' must map names to notes.")
        if not isinstance(data["success"], bool):
            raise ModelFileError(f"{where}: 'fit.success' must be true or false.")
        try:
            domain = Domain.from_dict(data.get("domain", {}), f"{where}: fit.domain")
        except ValueError as exc:
            raise ModelFileError(str(exc)) from exc
        stderr = data.get("batch_k_stderr")
        return cls(
            free=free, not_identifiable=dict(notes), cov=cov,
            sigma=read_number(data["sigma"], f"{where}: fit.sigma", allow_null=True, lower=0),
            n=int(read_number(data["n"], f"{where}: fit.n", lower=0, integer=True)),
            nfev=int(read_number(data.get("nfev", 0), f"{where}: fit.nfev", lower=0, integer=True)),
            success=data["success"], message=str(data.get("message", ""))[:2000],
            rank=int(read_number(data["rank"], f"{where}: fit.rank", lower=0, integer=True)),
            cost=read_number(data.get("cost"), f"{where}: fit.cost", allow_null=True),
            fit_time_s=read_number(data.get("fit_time_s"), f"{where}: fit.fit_time_s", allow_null=True),
            batch_rule=rule, batch_k=batch_k,
            batch_k_stderr=None if stderr is None else read_number(stderr, f"{where}: fit.batch_k_stderr"),
            batch_k_at_bound=bool(data.get("batch_k_at_bound", False)),
            mape_pct=read_number(data.get("mape_pct"), f"{where}: fit.mape_pct", allow_null=True),
            domain=domain,
            n_negative=int(read_number(data.get("n_negative", 0), f"{where}: fit.n_negative",
                                       lower=0, integer=True)),
        )


def _matrix(raw, k: int, where: str) -> np.ndarray:
    if k == 0:
        if raw not in ([], [[]]):
            raise ModelFileError(f"{where} must be empty when no parameter is free.")
        return np.zeros((0, 0))
    ok = isinstance(raw, list) and len(raw) == k and all(
        isinstance(r, list) and len(r) == k for r in raw)
    if not ok:
        raise ModelFileError(f"{where} must be a {k}x{k} matrix.")
    # null is NaN: a fit without residual degrees of freedom has an undefined covariance
    vals = [read_number(v, where, allow_null=True) for r in raw for v in r]
    return np.asarray(vals, dtype=float).reshape(k, k)
