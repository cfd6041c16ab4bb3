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


def check_overrides(owner: str, names: Sequence[str], **overrides: Mapping | None) -> None:
    """Check that ``fixed=``, ``bounds=`` and ``init=`` only name known parameters."""
    known = set(names)
    for arg, given in overrides.items():
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ValueError(f"The '{arg}' parameter of {owner} must be a dict or None. Got "
                             f"{given!r} instead.")
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"The '{arg}' parameter of {owner} names unknown parameters "
                             f"{sorted(unknown)}; parameters are {list(names)}.")
    for name, pair in (overrides.get("bounds") or {}).items():
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2 and float(pair[0]) <= float(pair[1])
        if not ok:
            raise ValueError(f"The 'bounds' parameter of {owner} must map names to (lower, upper) "
                             f"with lower <= upper; got {name}: {pair!r}.")


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
