"""Elementary error measures, defined once (evaluation, fits and reports all use these)."""

from __future__ import annotations

import numpy as np

__all__ = ["abs_pct_errors", "mape"]


def abs_pct_errors(y_true, y_pred) -> np.ndarray:
    """Absolute percentage errors ``100 |pred - true| / |true|`` per row.

    Rows with a true value of zero give ``inf`` (or NaN where the prediction is zero too);
    callers that need a number check the truth is positive first.

    Examples
    --------
    >>> abs_pct_errors([100.0, 50.0], [110.0, 45.0]).tolist()
    [10.0, 10.0]
    """
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * np.abs(p - t) / np.abs(t)


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent.

    Examples
    --------
    >>> mape([100.0, 50.0], [110.0, 40.0])
    15.0
    """
    return float(np.mean(abs_pct_errors(y_true, y_pred)))
