"""From a training table (or array) to the arrays a fit works on.

:func:`training_data` reads a canonical table once into :class:`TrainingData`: the model's
variables, the batch columns (the effective batch depends on a rule resolved at fit
time), the target, the weights and the label columns. :meth:`TrainingData.take` selects
rows without going back to pandas, so that many groups are fitted from one read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.batch import BatchInputs, batch_inputs
from ..core.checks import measured_column, plain
from ..core.domain import LABEL_COLUMNS, SeenLabels
from ..core.variables import (
    SCHEMA_DEFAULTS,
    VARIABLE_COLUMNS,
    array_variables,
    check_variables,
    table_variables,
)
from ..exceptions import FitError

__all__ = ["TrainingData", "training_data", "target_values", "check_positive_target", "SETTINGS"]

#: Layout variables a form may have no term for (data-parallel replicas ``d``, expert
#: parallelism ``e``): read from a table wherever it has them, for the training domain.
SETTINGS = ("d", "e")


@dataclass
class TrainingData:
    """Arrays of one training table.

    Attributes
    ----------
    V : dict
        Variables other than the batch ``B`` (or every variable for array input).
    batch : BatchInputs or None
        Batch columns (None for array input: ``B`` is then in ``V`` as given).
    y : ndarray
        Target.
    w : ndarray or None
        Weights (None: all ones).
    labels : dict
        Label column -> its values (a Series), or ``(codes, values)`` once coded: each row's
        code into the distinct values (-1 where missing). For the training domain.
    filled : dict
        Variables whose column was absent, with the schema default used.
    ranges : dict
        ``(min, max)`` of the variables in ``V``, where the read computed them (empty for a
        selection of rows).
    settings : dict
        Variables of :data:`SETTINGS` that the table gives but the model has no term for
        (replicas, expert parallelism): kept for the training domain, so that rows that
        differ in them are named at fit time and new values flagged at prediction.
    index : Index or None
        The table's row labels, for errors that name rows (None: array input, positions).
    """

    V: dict[str, np.ndarray]
    batch: BatchInputs | None
    y: np.ndarray
    w: np.ndarray | None = None
    labels: dict[str, object] = field(default_factory=dict)
    filled: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    settings: dict[str, np.ndarray] = field(default_factory=dict)
    index: pd.Index | None = None

    def _coded(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        for k, v in list(self.labels.items()):
            if isinstance(v, pd.Series):
                codes, uniq = pd.factorize(v)
                self.labels[k] = (np.asarray(codes, dtype=np.int32), np.asarray(uniq, dtype=object))
        return self.labels  # type: ignore[return-value]

    def take(self, idx) -> TrainingData:
        """The rows ``idx`` (integer positions or a boolean mask)."""
        return TrainingData({k: v[idx] for k, v in self.V.items()},
                            None if self.batch is None else self.batch.take(idx), self.y[idx],
                            None if self.w is None else self.w[idx],
                            {k: (c[idx], u) for k, (c, u) in self._coded().items()},
                            dict(self.filled), settings={k: v[idx] for k, v in self.settings.items()},
                            index=None if self.index is None else self.index[idx])

    def seen(self) -> SeenLabels:
        """The labels these rows hold, read when first asked for from copies of the label
        columns (see :class:`~energylens.core.domain.SeenLabels`)."""
        # copies: under pandas 2 a column is a view of the user's table, which may change
        return SeenLabels(functools.partial(distinct_labels, {
            k: v.copy(deep=True) if isinstance(v, pd.Series) else v for k, v in self.labels.items()}))


def distinct_labels(labels: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Label column -> the distinct values of each column (a Series, or ``(codes, values)``
    where a grouped fit has coded it)."""
    out = {}
    for k, v in labels.items():
        if isinstance(v, pd.Series):
            out[k] = v.unique()  # missing values are dropped by Domain.from_training
        else:
            c, u = v
            out[k] = u[np.flatnonzero(np.bincount(c[c >= 0], minlength=len(u)))]
    return out


def target_values(X, y, name: str, unit: str, owner: str) -> np.ndarray:
    """The target as floats: ``y`` as given, or the table's ``name`` column."""
    if y is None:
        if isinstance(X, pd.DataFrame) and name in X.columns:
            y = X[name]
            if y.dtype.kind == "f":
                y = y.to_numpy(dtype=float)
                _check_finite_target(y, name, owner, X.index)
                return y
        else:
            raise FitError(f"{owner}: y is None and X has no '{name}' column: pass the measured "
                           f"target ({unit}) as y.")
    y = np.asarray(pd.to_numeric(pd.Series(np.asarray(y).ravel()), errors="coerce"), float)
    index = X.index if isinstance(X, pd.DataFrame) and len(X) == len(y) else None
    _check_finite_target(y, name, owner, index)
    return y


def _rows_text(bad: np.ndarray, index) -> str:
    """The first rows of a mask, by the table's labels (``index``) or else by position."""
    first = np.flatnonzero(bad)[:5]
    if index is None:
        return f"first at positions {first.tolist()}"
    return f"first at rows {[plain(v) for v in index[first]]}"


def _check_finite_target(y: np.ndarray, name: str, owner: str, index) -> None:
    bad = ~np.isfinite(y)
    if bad.any():
        raise FitError(f"{owner}: the target {name} has {int(bad.sum())} missing or non-finite "
                       f"value(s) ({_rows_text(bad, index)}).")


def checked_prediction(f: np.ndarray, X, owner: str, target: str = "energy_j") -> np.ndarray:
    """``f`` when every prediction is finite and >= 0; else a ValueError naming ``owner``, the
    first rows of ``X`` (its index, or positions) and their values. The one rule of every
    model's and formula's ``predict``."""
    bad = ~np.isfinite(f) | (f < 0)
    if bad.any():
        idx = X.index if isinstance(X, pd.DataFrame) else np.arange(len(f))
        rows = [plain(v) for v in idx[np.flatnonzero(bad)[:5]]]
        raise ValueError(
            f"{owner} gives a negative or non-finite {target} for {int(bad.sum())} row(s) "
            f"(first rows {rows}, values {[float(f'{v:.4g}') for v in f[bad][:5]]}): the formula "
            "cannot be trusted there.")
    return f


def check_positive_target(y: np.ndarray, owner: str, index=None) -> None:
    """The relative and log losses divide by the target: it must be > 0 (``index``: the
    table's row labels, for the message; positions without it)."""
    bad = y <= 0
    if bad.any():
        raise FitError(
            f"{owner}: the relative and log losses need a strictly positive target; "
            f"{int(bad.sum())} value(s) of y are <= 0 ({_rows_text(bad, index)}: "
            f"{y[bad][:5].tolist()}). Use loss='absolute' or clean the table.")


def _weights(sample_weight, n: int, owner: str) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.array(sample_weight, dtype=float).ravel()
    if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise FitError(f"{owner}: sample_weight must be finite, non-negative and of length {n}.")
    if not np.any(w > 0):
        raise FitError(f"{owner}: sample weights are all zero; at least one must be positive.")
    return None if np.all(w == 1.0) else w


def training_data(X, y, sample_weight, *, variables: Sequence[str], uses_batch: bool,
                  target: str, unit: str, owner: str, read: Callable | None = None) -> TrainingData:
    """Read a training table (or a 2-D array in ``variables`` order) into arrays.

    Raises :class:`~energylens.FitError` for data that cannot be fitted (fewer than two
    rows, a non-finite target) and ``ValueError`` for missing columns.
    """
    if not isinstance(X, pd.DataFrame):
        # scikit-learn's order of checks: the array itself, then the target and weights,
        # then its width.
        from sklearn.utils.validation import check_array

        X = check_array(X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2)
    y = target_values(X, y, target, unit, owner)
    n = len(X)
    if len(y) != n:
        raise FitError(f"{owner}: X and y have inconsistent numbers of samples: {n} and {len(y)}.")
    if n < 2:
        raise FitError(f"{owner} needs at least 2 rows to fit; got n_samples = {n}.")
    w = _weights(sample_weight, n, owner)
    if not isinstance(X, pd.DataFrame):
        return TrainingData(array_variables(X, variables, owner=owner), None, y, w)
    names = [v for v in variables if not (uses_batch and v == "B")]
    filled = {v: SCHEMA_DEFAULTS[v] for v in names
              if v in SCHEMA_DEFAULTS and VARIABLE_COLUMNS[v] not in X.columns}
    V = (read or _default_read)(X, names, filled, owner)
    ranges: dict = {}
    check_variables(V, X.index, owner, ranges)
    batch = batch_inputs(X, owner) if uses_batch else None
    if batch is not None and (np.any(~np.isfinite(batch.cap)) or np.any(batch.cap <= 0)):
        raise ValueError(f"{owner}: 'batch_size' must be finite and > 0 in every row.")
    labels = {c: X[c] for c in LABEL_COLUMNS if c in X.columns}
    settings = {v: _setting(X, v, owner) for v in SETTINGS
                if v not in variables and VARIABLE_COLUMNS[v] in X.columns}
    return TrainingData(V, batch, y, w, labels, filled, ranges, settings, X.index)


def _setting(X: pd.DataFrame, name: str, owner: str) -> np.ndarray:
    """A layout column the model has no term for (replicas, expert parallelism), checked as
    the model's own would be where a row gives it (a whole number >= 1)."""
    a = measured_column(X, VARIABLE_COLUMNS[name], owner)
    given = np.isfinite(a)
    check_variables({name: a[given]}, X.index[given], owner)
    return a


def _default_read(X, names, fill, owner):
    return table_variables(X, names, fill=fill, owner=owner, check=False)
