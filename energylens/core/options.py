"""Checks of options (constructor arguments and keyword arguments), in one grammar.

Estimators declare ``_parameter_constraints`` as scikit-learn's own estimators do and call
``self._validate_params()`` once at the start of ``fit``; functions call
:func:`check_options`. Both go through scikit-learn's validator, so every message reads
the same way::

    The 'loss' parameter of EnergyLensModel must be a str among {'log', 'relative'}.
    Got 'ls' instead.

scikit-learn keeps this machinery in a private module; it is imported here and nowhere
else, so a change there is mended in one place.

Examples
--------
>>> check_options("select_config", {"objective": [{"energy_j"}]},
...               {"objective": "watts"})
Traceback (most recent call last):
...
sklearn.utils._param_validation.InvalidParameterError: The 'objective' parameter of \
select_config must be a str among {'energy_j'}. Got 'watts' instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first use (module __getattr__ below)
    from sklearn.utils._param_validation import (
        HasMethods,
        Interval,
        InvalidParameterError,
        Options,
        StrOptions,
    )

    LEVEL: Interval
    POSITIVE: Interval
    POSITIVE_INT: Interval
    NEGATIVE_INT: Interval
    N_JOBS: list

__all__ = [
    "HasMethods",
    "Integral",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Real",
    "StrOptions",
    "check_options",
    "check_str_option",
    "check_fitted",
    "missing_columns_hint",
    "LEVEL",
    "POSITIVE",
    "POSITIVE_INT",
    "NEGATIVE_INT",
    "N_JOBS",
]

#: scikit-learn's constraint classes, imported on first use (importing scikit-learn takes
#: most of a second: reading a table or the catalogue, whose options are plain strings,
#: need not pay it).
_SKLEARN_NAMES = ("HasMethods", "Interval", "InvalidParameterError", "Options", "StrOptions")
#: Shared constraints, built on first use: a coverage probability in (0, 1), a number > 0,
#: an integer >= 1, an integer <= -1 (with POSITIVE_INT: a joblib ``n_jobs``, never 0).
_SHARED = {"LEVEL": ("Real", 0, 1, "neither"), "POSITIVE": ("Real", 0, None, "neither"),
           "POSITIVE_INT": ("Integral", 1, None, "left"),
           "NEGATIVE_INT": ("Integral", None, -1, "right")}


def __getattr__(name: str):
    if name in _SKLEARN_NAMES:
        from sklearn.utils import _param_validation

        value = getattr(_param_validation, name)
    elif name in _SHARED:
        kind, lo, hi, closed = _SHARED[name]
        value = __getattr__("Interval")({"Real": Real, "Integral": Integral}[kind], lo, hi,
                                        closed=closed)
    elif name == "N_JOBS":  # joblib's n_jobs: None, or a whole number other than 0
        value = [__getattr__("NEGATIVE_INT"), __getattr__("POSITIVE_INT"), None]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _plainly_met(constraint, value) -> bool | None:
    """Whether ``value`` meets a constraint that needs no scikit-learn to check (None for a
    constraint only scikit-learn reads)."""
    if constraint is None:
        return value is None
    if isinstance(constraint, (set, frozenset)):
        return isinstance(value, str) and value in constraint
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    if constraint == "boolean":
        return isinstance(value, bool)
    return None


def _sklearn_form(constraint):
    """A plain set of strings as scikit-learn's ``StrOptions``; others as they are."""
    if isinstance(constraint, (set, frozenset)):
        return __getattr__("StrOptions")(set(constraint))
    return constraint


def check_options(owner: str, constraints: Mapping[str, list], values: Mapping[str, object]) -> None:
    """Validate ``values`` against ``constraints`` (scikit-learn's constraint language).

    Parameters
    ----------
    owner : str
        The function or class named in the message.
    constraints : mapping
        Option name -> list of allowed constraints (types, ``StrOptions``, ``Interval``,
        ``None``, ...). A plain set of strings stands for ``StrOptions`` of them; where every
        value meets a type, ``None`` or such a set, scikit-learn is not imported.
    values : mapping
        Option name -> the value given. Names without a constraint are not checked.

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` (and ``TypeError``) naming the option, what is allowed and what
        was given.
    """
    given = {k: v for k, v in values.items() if k in constraints}
    if all(any(_plainly_met(c, v) for c in constraints[k]) for k, v in given.items()):
        return  # every value meets a plain constraint: scikit-learn is not needed
    from sklearn.utils._param_validation import validate_parameter_constraints

    validate_parameter_constraints(
        {k: [_sklearn_form(c) for c in cs] for k, cs in constraints.items()}, given,
        caller_name=owner,
    )


def check_str_option(owner: str, name: str, value: object, allowed) -> str:
    """Check that ``value`` is one of the strings ``allowed`` and return it.

    Examples
    --------
    >>> check_str_option("discover", "per", "token", ("request", "token"))
    'token'
    """
    check_options(owner, {name: [set(allowed)]}, {name: value})
    return value  # type: ignore[return-value]


def check_fitted(estimator, attributes: str | tuple[str, ...] = ()) -> None:
    """Raise :class:`~energylens.NotFittedError` unless ``estimator`` is fitted.

    The one way energylens says "not fitted": the error is also scikit-learn's
    ``NotFittedError``, with scikit-learn's sentence.

    Parameters
    ----------
    estimator : object
        The estimator.
    attributes : str or tuple of str
        Attributes that exist only after ``fit`` (default: any attribute ending in ``_``
        that is not a property, as scikit-learn decides).
    """
    from sklearn.utils.validation import check_is_fitted

    from ..exceptions import NotFittedError

    attrs = (attributes,) if isinstance(attributes, str) else tuple(attributes)
    fitted = all(hasattr(estimator, a) for a in attrs) if attrs else None
    if fitted is None:
        try:
            check_is_fitted(estimator)
            fitted = True
        except Exception:  # noqa: BLE001 - scikit-learn's own NotFittedError
            fitted = False
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator.")


def missing_columns_hint(missing, columns) -> str:
    """``" ('modle': did you mean 'model'?)"`` for columns named but absent, matched against
    the table's ``columns`` ignoring case ("" where none is close)."""
    import difflib

    lower = {str(c).lower(): str(c) for c in columns}
    close = {c: difflib.get_close_matches(str(c).lower(), list(lower), n=1, cutoff=0.6)
             for c in missing}
    hint = "; ".join(f"{c!r}: did you mean {lower[m[0]]!r}?" for c, m in close.items() if m)
    return f" ({hint})" if hint else ""
