"""The training domain of a fitted model, and which new rows lie outside it.

A closed form extrapolates by construction, but a prediction outside the data it was
fitted on must say so. :class:`Domain` records the range of every variable a model read
and the labels (model, GPU, ...) it saw; :meth:`Domain.check` flags the rows of a new table
that leave them, and says which variables and how far.

Examples
--------
>>> import numpy as np
>>> d = Domain.from_training({"t": np.array([1.0, 2.0]), "so": np.array([64.0, 1024.0])})
>>> out = d.check({"t": np.array([2.0, 8.0]), "so": np.array([128.0, 128.0])})
>>> out.mask.tolist(), out.describe()
([False, True], 'tp up to 8 (4x the largest seen, 2)')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .variables import VARIABLE_COLUMNS

__all__ = ["Domain", "Extrapolation", "LABEL_COLUMNS", "SeenLabels", "seen_labels"]

#: Label columns whose values a model records (a new value is an extrapolation).
LABEL_COLUMNS: tuple[str, ...] = ("model", "gpu", "precision", "workload", "source")
_TOL = 1e-9


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class Extrapolation:
    """Rows outside a training domain.

    Attributes
    ----------
    mask : ndarray of bool
        True for each row outside the domain.
    reasons : dict
        Column -> a phrase saying how far the rows go (``"tp up to 64 (8x the largest
        seen, 8)"``, ``"gpu 'A100' not seen (seen: H100)"``).
    columns : dict
        Column -> boolean mask of the rows that leave the domain in that column.
    """

    mask: np.ndarray
    reasons: dict[str, str] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.mask.any())

    @property
    def per_row(self) -> np.ndarray:
        """For each row, the columns it leaves, comma-separated (``""`` inside the domain)."""
        out = np.full(len(self.mask), "", dtype=object)
        for col, m in self.columns.items():
            idx = np.flatnonzero(m)
            out[idx] = [f"{v},{col}" if v else col for v in out[idx]]
        return out

    def describe(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons.values())


def seen_labels(labels: Mapping[str, object]) -> dict[str, list[str]]:
    """Label column -> the sorted distinct values of ``labels``' sequences, as strings
    (missing values dropped)."""
    seen: dict[str, list[str]] = {}
    for col, values in labels.items():
        values = np.asarray(values, dtype=object)
        uniq = values if len(values) <= 64 else pd.unique(values)
        seen[col] = sorted({str(u) for u in uniq if not (u is None or u != u)})
    return seen


class SeenLabels(Mapping):
    """The labels a fit saw, read from its label columns when first asked for.

    A fit keeps ``distinct`` (a function giving each label column's distinct values) and
    calls it on first use, so that a fit nobody asks about its labels does not pay for
    them (about a fifth of a millisecond of a 5,000-row fit, mostly Arrow's ``unique``).
    ``distinct`` holds the training table's label columns until then; a pickle or a copy
    holds only the values.
    """

    def __init__(self, distinct: Callable[[], Mapping[str, object]]):
        self._distinct: Callable[[], Mapping[str, object]] | None = distinct
        self._seen: dict[str, list[str]] = {}

    def _resolved(self) -> dict[str, list[str]]:
        if self._distinct is not None:
            self._seen, self._distinct = seen_labels(self._distinct()), None
        return self._seen

    def __getitem__(self, key):
        return self._resolved()[key]

    def __iter__(self):
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())

    def __repr__(self) -> str:
        return repr(self._resolved())

    def __reduce__(self):
        return dict, (self._resolved(),)


@dataclass
class Domain:
    """Ranges of the variables and labels a model was fitted on.

    Attributes
    ----------
    ranges : dict
        Variable short name -> ``(min, max)`` over the training rows.
    labels : mapping
        Label column -> sorted values seen (for the columns of :data:`LABEL_COLUMNS` that
        the training table had); a :class:`SeenLabels`, read when first asked for, where a
        fit passed one.
    filled : dict
        Variables whose column the training table lacked, with the schema default used.
    """

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    labels: Mapping[str, list[str]] = field(default_factory=dict)
    filled: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_training(cls, V: Mapping[str, np.ndarray],
                      labels: Mapping[str, object] | pd.DataFrame | None = None, *,
                      filled: Mapping[str, float] | None = None,
                      known: Mapping[str, tuple[float, float]] | None = None,
                      settings: Mapping[str, np.ndarray] | None = None) -> Domain:
        """The domain of training variables ``V`` and label columns ``labels``.

        ``labels`` maps label columns to the values seen (any sequence; repeats and missing
        values are dropped), or is a :class:`SeenLabels` (kept as it is, read on first use);
        a table is read for the columns of :data:`LABEL_COLUMNS` it has.
        ``known`` may give the ``(min, max)`` of variables the caller has computed already;
        ``settings`` the values of layout variables the model does not read (their ranges are
        kept, so that :meth:`check` flags new values from a table's columns).
        """
        known = known or {}
        ranges = {k: known[k] if k in known else (float(v.min()), float(v.max()))
                  for k, v in V.items() if len(v)}
        for k, v in (settings or {}).items():
            v = np.asarray(v, dtype=float)
            v = v[np.isfinite(v)]
            if len(v) and k not in ranges:
                ranges[k] = (float(v.min()), float(v.max()))
        if isinstance(labels, pd.DataFrame):
            labels = {c: pd.unique(labels[c].dropna()) for c in LABEL_COLUMNS if c in labels.columns}
        seen = labels if isinstance(labels, SeenLabels) else seen_labels(labels or {})
        return cls(ranges, seen, dict(filled or {}))

    def resolved(self) -> Domain:
        """This domain with its labels read into a plain dict (as JSON and users expect)."""
        if isinstance(self.labels, SeenLabels):
            self.labels = dict(self.labels)
        return self

    def constant_values(self) -> dict[str, float]:
        """Variables that took one value in training: safe to fill where a column is absent."""
        return {k: lo for k, (lo, hi) in self.ranges.items() if hi - lo <= _TOL * max(1.0, abs(lo))}

    def check(self, V: Mapping[str, np.ndarray], X: pd.DataFrame | None = None, *,
              ranges: Mapping[str, tuple[float, float]] | None = None) -> Extrapolation:
        """Flag the rows of new variables ``V`` (and labels of ``X``) outside the domain.

        ``ranges`` may give the variables' ``(min, max)`` when the caller has them already.
        """
        n = len(next(iter(V.values()))) if V else (len(X) if X is not None else 0)
        out = Extrapolation(np.zeros(n, dtype=bool))
        known = ranges or {}
        for name, (lo, hi) in self.ranges.items():
            if name in V:
                self._check_range(out, name, np.asarray(V[name], dtype=float), lo, hi,
                                  known.get(name))
            elif isinstance(X, pd.DataFrame) and len(X) == n and VARIABLE_COLUMNS.get(name) in X.columns:
                # a setting the model does not read (replicas): a new value is still named
                a = pd.to_numeric(X[VARIABLE_COLUMNS[name]], errors="coerce").to_numpy(dtype=float)
                self._check_range(out, name, a, lo, hi)
        if isinstance(X, pd.DataFrame) and len(X) == n:
            for col, seen in self.labels.items():
                if col in X.columns:
                    self._check_labels(out, col, X[col], seen)
        return out

    @staticmethod
    def _check_range(out: Extrapolation, name: str, a: np.ndarray, lo: float, hi: float,
                     minmax: tuple[float, float] | None = None) -> None:
        tol = _TOL * max(1.0, abs(lo), abs(hi))
        if minmax is None:  # NaN (a value the row does not give) is never outside
            minmax = (float(np.fmin.reduce(a, initial=np.inf)), float(np.fmax.reduce(a, initial=-np.inf)))
        bot, top = minmax
        if top <= hi + tol and bot >= lo - tol:
            return
        col = VARIABLE_COLUMNS.get(name, name)
        parts = []
        if top > hi + tol:
            ratio = f"{top / hi:.3g}x the largest seen" if hi > 0 else "above the largest seen"
            parts.append(f"up to {_fmt(top)} ({ratio}, {_fmt(hi)})")
        if bot < lo - tol:
            ratio = f"{lo / bot:.3g}x below the smallest seen" if bot > 0 else "below the smallest seen"
            parts.append(f"down to {_fmt(bot)} ({ratio}, {_fmt(lo)})")
        m = (a > hi + tol) | (a < lo - tol)
        out.mask |= m
        out.columns[col] = m
        out.reasons[col] = f"{col} " + " and ".join(parts)

    @staticmethod
    def _check_labels(out: Extrapolation, col: str, values: pd.Series, seen: list[str]) -> None:
        uniq = [str(u) for u in values.unique() if not pd.isna(u)]
        unseen = sorted(set(uniq) - set(seen))
        if unseen and col in ("model", "gpu"):
            # another catalogue spelling of a trained model or GPU is that one, not a new one
            from .catalogue import aliased

            spelt = aliased(pd.DataFrame({col: unseen}), {col: seen})[col].tolist()
            unseen = [u for u, v in zip(unseen, spelt) if v == u]
        if not unseen:
            return
        m = values.astype(str).isin(unseen).to_numpy(dtype=bool)
        out.mask |= m
        out.columns[col] = m
        shown = ", ".join(repr(u) for u in unseen[:3]) + (" ..." if len(unseen) > 3 else "")
        seen_txt = ", ".join(seen[:5]) + (" ..." if len(seen) > 5 else "")
        out.reasons[col] = f"{col} {shown} not seen in training (seen: {seen_txt})"

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {"ranges": {k: [lo, hi] for k, (lo, hi) in self.ranges.items()},
                "labels": {k: list(v) for k, v in self.labels.items()},
                "filled": dict(self.filled)}

    @classmethod
    def from_dict(cls, data: object, where: str = "<dict>") -> Domain:
        """Rebuild from :meth:`to_dict` content, checking every entry."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: the training domain must be an object.")
        ranges, labels, filled = {}, {}, {}
        raw = data.get("ranges", {})
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: 'ranges' must be an object.")
        for k, v in raw.items():
            ok = (isinstance(v, (list, tuple)) and len(v) == 2
                  and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                          and math.isfinite(x) for x in v) and v[0] <= v[1])
            if not ok:
                raise ValueError(f"{where}: range of {k!r} must be [low, high] with finite "
                                 f"numbers, low <= high; got {v!r}.")
            ranges[str(k)] = (float(v[0]), float(v[1]))
        raw = data.get("labels", {})
        if not isinstance(raw, Mapping) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v) for v in raw.values()):
            raise ValueError(f"{where}: 'labels' must map columns to lists of strings.")
        labels = {str(k): list(v) for k, v in raw.items()}
        raw = data.get("filled", {})
        if not isinstance(raw, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw.values()):
            raise ValueError(f"{where}: 'filled' must map variables to numbers.")
        filled = {str(k): float(v) for k, v in raw.items()}
        return cls(ranges, labels, filled)
