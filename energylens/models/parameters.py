"""Parameters as data: each declared once with its start, bounds, unit and meaning.

A closed form lists its :class:`Parameter` objects; :func:`resolve` applies a user's
``fixed=``, ``bounds=`` and ``init=`` overrides and returns the arrays a fit works on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Parameter", "Resolved", "resolve", "check_overrides"]


@dataclass(frozen=True)
class Parameter:
    """One named parameter of a closed form.

    Attributes
    ----------
    name : str
        Parameter name, e.g. ``"c1"``.
    init : float
        Start value (overridden by a data-driven start where the model has one).
    lower, upper : float
        Bounds.
    unit : str
        Physical unit, e.g. ``"J/token"``.
    meaning : str
        What the parameter means physically.
    informed_by : tuple of str
        Variables whose variation the parameter's term needs. Identifiability itself is
        decided from the data (the rank of the Jacobian); this only breaks ties: when
        several parameters are confounded, those whose variables do not vary are the ones
        fixed, and their note names those variables.
    neutral : float
        Value used when the parameter cannot be identified (0 for overheads and terms
        that vanish).
    linear : bool
        Whether the form is linear in this parameter once the non-linear ones are held
        (the data-driven start solves for these by least squares).
    """

    name: str
    init: float
    lower: float = -np.inf
    upper: float = np.inf
    unit: str = ""
    meaning: str = ""
    informed_by: tuple[str, ...] = ()
    neutral: float = 0.0
    linear: bool = False


@dataclass
class Resolved:
    """Start values, bounds and the free mask of a parameter list, after overrides."""

    theta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray
    fixed_by_user: set[str]


def check_overrides(owner: str, specs: Sequence[Parameter], **overrides: Mapping | None) -> None:
    """Check the ``fixed=``, ``bounds=`` and ``init=`` overrides of a fit.

    They must name known parameters; bounds are ``(lower, upper)`` numbers with ``lower <=
    upper``; fixed and start values are finite numbers, and a fixed value lies within its
    parameter's bounds (after the ``bounds=`` overrides): a value outside them is an error,
    never silently moved onto the bound.

    Raises
    ------
    ValueError
        Naming the parameter, the value and, for a fixed value, its bounds.

    Examples
    --------
    >>> check_overrides("M", [Parameter("a", 1.0, 0.0, 5.0)], fixed={"a": 9.0})
    Traceback (most recent call last):
    ...
    ValueError: The 'fixed' parameter of M holds a = 9.0 outside the bounds [0, 5] of a; fix it within them or widen them with bounds={'a': (lower, upper)}.
    """
    names = [p.name for p in specs]
    for arg, given in overrides.items():
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ValueError(f"The '{arg}' parameter of {owner} must be a dict or None. Got "
                             f"{given!r} instead.")
        unknown = set(given) - set(names)
        if unknown:
            raise ValueError(f"The '{arg}' parameter of {owner} names unknown parameters "
                             f"{sorted(unknown)}; parameters are {names}.")
    bounds = {p.name: (p.lower, p.upper) for p in specs}
    for name, pair in (overrides.get("bounds") or {}).items():
        lo, hi = (_number(v) for v in pair) if isinstance(pair, (tuple, list)) and len(pair) == 2 \
            else (None, None)
        if lo is None or hi is None or not lo <= hi:
            raise ValueError(f"The 'bounds' parameter of {owner} must map names to (lower, upper) "
                             f"numbers with lower <= upper; got {name}: {pair!r}.")
        bounds[name] = (lo, hi)
    for arg in ("fixed", "init"):
        for name, v in (overrides.get(arg) or {}).items():
            x = _number(v)
            if x is None or not np.isfinite(x):
                raise ValueError(f"The '{arg}' parameter of {owner} must map names to finite "
                                 f"numbers; got {name}: {v!r}.")
            lo, hi = bounds[name]
            if arg == "fixed" and not lo <= x <= hi:
                raise ValueError(
                    f"The 'fixed' parameter of {owner} holds {name} = {v!r} outside the bounds "
                    f"[{lo:g}, {hi:g}] of {name}; fix it within them or widen them with "
                    f"bounds={{{name!r}: (lower, upper)}}.")


def _number(v) -> float | None:
    """``v`` as a float, None if it is not a real number (a bool, a string, None ...)."""
    if isinstance(v, (bool, np.bool_, str, bytes)) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def resolve(specs: Sequence[Parameter], *, fixed: Mapping[str, float] | None = None,
            bounds: Mapping[str, tuple[float, float]] | None = None,
            init: Mapping[str, float] | None = None) -> Resolved:
    """Apply overrides to declared parameters.

    Examples
    --------
    >>> r = resolve([Parameter("a", 1.0, 0.0, 5.0), Parameter("b", 2.0)], fixed={"b": 3.0})
    >>> r.theta.tolist(), r.free.tolist()
    ([1.0, 3.0], [True, False])
    """
    names = [p.name for p in specs]
    theta = np.array([p.init for p in specs], dtype=float)
    lo = np.array([p.lower for p in specs], dtype=float)
    hi = np.array([p.upper for p in specs], dtype=float)
    for name, (a, b) in (bounds or {}).items():
        i = names.index(name)
        lo[i], hi[i] = float(a), float(b)
    for name, v in (init or {}).items():
        theta[names.index(name)] = float(v)
    free = np.ones(len(specs), dtype=bool)
    for name, v in (fixed or {}).items():
        i = names.index(name)
        theta[i] = float(v)
        free[i] = False
    return Resolved(theta, lo, hi, free, set(fixed or {}))
