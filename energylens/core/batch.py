"""The effective running batch: how many requests really ran together.

Real tables often record only the configured cap (vLLM's ``max_num_seqs``). When a
replica receives few requests, the cap overstates concurrency and a model that trusts it
mispredicts decode energy. Every model in energylens therefore works with an *effective
batch*, chosen by one rule:

``"running"``
    the measured mean concurrency per replica, column ``running_batch`` (a row that leaves it
    empty is read at its cap, and the fit warns how many do);
``"littles_law"``
    Little's law, ``B = R * latency_s / duration_s`` with ``R = n_requests / dp`` the
    requests per replica (never above the cap);
``"saturating"``
    ``B = 1 / (1/B_cap + 1/(k * R))``: the cap when the replica has many requests, ``k*R``
    when it has few; ``k`` is fitted by the model;
``"cap"``
    the column ``batch_size`` as given.

``"auto"`` takes the first of these that the table supports. A fitted model records the
rule it used, and applies it to new configurations row by row, falling back to
``batch_size`` (read as the intended running batch) where a row lacks the columns the rule
needs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..exceptions import EnergyLensWarning
from .checks import measured_column, plain
from .options import check_str_option

__all__ = ["BatchRule", "BATCH_RULES", "RUNNING_OVER_CAP", "BatchInputs", "batch_inputs",
           "resolve_rule", "effective", "resolve_batch_rule", "effective_batch"]

BatchRule = Literal["auto", "running", "littles_law", "saturating", "cap"]
BATCH_RULES: tuple[str, ...] = ("auto", "running", "littles_law", "saturating", "cap")
#: A measured running batch may exceed its cap by this share (rounding), no more: the one
#: rule of the models and of the table validation.
RUNNING_OVER_CAP = 1e-6


@dataclass
class BatchInputs:
    """The columns every batch rule may read, as arrays (one entry per row).

    ``None`` marks a column the table does not have. :func:`batch_inputs` builds it from a
    table once; :meth:`take` selects rows (a group) without going back to pandas.
    """

    cap: np.ndarray
    dp: np.ndarray
    is_cap: np.ndarray
    running: np.ndarray | None = None
    n_requests: np.ndarray | None = None
    latency: np.ndarray | None = None
    duration: np.ndarray | None = None

    def take(self, idx) -> BatchInputs:
        """The rows ``idx`` (an integer index array or a boolean mask)."""
        def t(a):
            return None if a is None else a[idx]

        return BatchInputs(self.cap[idx], self.dp[idx], self.is_cap[idx], t(self.running),
                           t(self.n_requests), t(self.latency), t(self.duration))


def _col(df: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in df.columns:
        return None
    s = df[name]
    if s.dtype.kind in "fiu":
        return s.to_numpy(dtype=float)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def batch_inputs(df: pd.DataFrame, owner: str = "energylens") -> BatchInputs:
    """Read the batch columns of a canonical table (``batch_size`` is required).

    The measured columns (``running_batch``, ``n_requests``, ``latency_s``, ``duration_s``)
    and ``dp`` may leave a row empty (not measured: the rules fall back to the cap there), but
    a value that is given must be a number > 0, and a measured running batch may not exceed
    the cap of a row that records one (``batch_kind == "cap"``): either is a ``ValueError``
    naming ``owner``, the column and the rows, never a silent fallback.
    """
    cap = _col(df, "batch_size")
    if cap is None:
        raise ValueError("The table needs a 'batch_size' column to compute the effective batch.")
    dp = measured_column(df, "dp", owner)
    dp = np.ones_like(cap) if dp is None else np.where(np.isnan(dp), 1.0, dp)
    is_cap = (df["batch_kind"].to_numpy() == "cap") if "batch_kind" in df.columns else np.zeros(
        len(df), dtype=bool)
    is_cap = np.asarray(is_cap, dtype=bool)
    running = measured_column(df, "running_batch", owner)
    if running is not None:
        over = is_cap & (running > cap * (1 + RUNNING_OVER_CAP))
        if over.any():
            first = np.flatnonzero(over)[:5]
            raise ValueError(
                f"{owner}: column 'running_batch' exceeds the row's cap ('batch_size', "
                f"batch_kind 'cap') in {int(over.sum())} row(s) (rows "
                f"{[plain(df.index[i]) for i in first]}: running {running[first].tolist()}, "
                f"cap {cap[first].tolist()}); a replica cannot run more requests at once than "
                f"its cap (both count requests per replica).")
    return BatchInputs(cap, dp, is_cap, running, *(measured_column(df, c, owner) for c in
                                                  ("n_requests", "latency_s", "duration_s")))


def _all_finite(a: np.ndarray | None) -> bool:
    return a is not None and len(a) > 0 and bool(np.all(np.isfinite(a) & (a > 0)))


def resolve_rule(inputs: BatchInputs, rule: BatchRule = "auto", *, stacklevel: int = 2) -> str:
    """The concrete rule ``rule`` means for these rows (see :func:`resolve_batch_rule`);
    ``stacklevel`` places the warning of rows without a running batch, counted from the
    caller (1: the caller's own line)."""
    if rule not in BATCH_RULES:
        check_str_option("resolve_batch_rule", "batch_rule", rule, BATCH_RULES)
    has_running = inputs.running is not None and bool(np.any(np.isfinite(inputs.running)))
    has_little = all(_all_finite(a) for a in (inputs.n_requests, inputs.latency, inputs.duration))
    is_cap = bool(inputs.is_cap.any())
    has_pool = _all_finite(inputs.n_requests)
    if rule in ("auto", "running") and has_running and not _all_finite(inputs.running):
        empty = int(np.sum(~np.isfinite(inputs.running)))
        warnings.warn(f"{len(inputs.cap) - empty} of {len(inputs.cap)} rows give a running_batch: "
                      f"the {empty} that do not are read at their batch_size (the cap, which "
                      "overstates the concurrency of a replica that is not saturated).",
                      EnergyLensWarning, stacklevel=stacklevel + 1)
    if rule == "auto":
        if has_running:
            return "running"
        if has_little and is_cap:
            return "littles_law"
        if has_pool and is_cap:
            return "saturating"
        return "cap"
    need = {
        "running": (has_running, "a 'running_batch' column with at least one value"),
        "littles_law": (has_little, "complete 'n_requests', 'latency_s' and 'duration_s' columns"),
        "saturating": (has_pool, "a complete 'n_requests' column"),
        "cap": (True, ""),
    }[rule]
    if not need[0]:
        raise ValueError(f"batch_rule={rule!r} needs {need[1]} in the training table.")
    return rule


def resolve_batch_rule(df: pd.DataFrame, rule: BatchRule = "auto") -> str:
    """Return the concrete rule ``"auto"`` means for this table (or check ``rule`` applies).

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table.
    rule : {"auto", "running", "littles_law", "saturating", "cap"}
        Requested rule.

    Returns
    -------
    str
        One of ``"running"``, ``"littles_law"``, ``"saturating"``, ``"cap"``.

    Raises
    ------
    ValueError
        If the rule is unknown or the table lacks the columns it needs.
    """
    return resolve_rule(batch_inputs(df), rule, stacklevel=2)


def effective(inputs: BatchInputs, rule: str, k: float | None = None) -> np.ndarray:
    """Effective running batch per row from :class:`BatchInputs` (see :func:`effective_batch`)."""
    if rule == "auto":
        rule = resolve_rule(inputs, "auto", stacklevel=3)  # effective_batch's caller
    cap = inputs.cap
    if rule == "cap":
        return cap.copy()
    out = cap.copy()
    if rule == "running":
        rb = inputs.running
        if rb is not None:
            ok = np.isfinite(rb) & (rb > 0)
            out[ok] = rb[ok]
    elif rule == "littles_law":
        n, lat, dur = inputs.n_requests, inputs.latency, inputs.duration
        if n is not None and lat is not None and dur is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                b = (n / inputs.dp) * lat / dur
            ok = np.isfinite(b) & (b > 0)
            out[ok] = np.minimum(b[ok], cap[ok])
    elif rule == "saturating":
        if k is None or not np.isfinite(k) or k <= 0:
            raise ValueError(f"The saturating batch rule needs a positive k; got {k!r}.")
        n = inputs.n_requests
        if n is not None:
            r = n / inputs.dp
            ok = np.isfinite(r) & (r > 0)
            out[ok] = 1.0 / (1.0 / cap[ok] + 1.0 / (k * r[ok]))
    else:
        check_str_option("effective_batch", "rule", rule, BATCH_RULES)
    return out


def effective_batch(df: pd.DataFrame, rule: str = "auto", k: float | None = None, *,
                    owner: str = "energylens") -> np.ndarray:
    """Effective running batch per row, in requests per replica.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table (needs ``batch_size``).
    rule : {"auto", "running", "littles_law", "saturating", "cap"}
        See the module docstring; rows lacking what the rule needs fall back to
        ``batch_size``.
    k : float, optional
        Saturation constant of the ``"saturating"`` rule (requests of concurrency per
        request in the pool); required for that rule.
    owner : str, default="energylens"
        Who is reading, for the error about a bad value (see :func:`batch_inputs`).

    Returns
    -------
    ndarray
        Effective batch, > 0.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"batch_size": [64.0], "n_requests": [32.0], "dp": [1]})
    >>> float(effective_batch(df, "saturating", k=1.0)[0])
    21.333333333333332
    """
    return effective(batch_inputs(df, owner), rule, k)
