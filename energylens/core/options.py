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
>>> check_options("select_config", {"objective": [StrOptions({"energy_j"})]},
...               {"objective": "watts"})
Traceback (most recent call last):
...
sklearn.utils._param_validation.InvalidParameterError: The 'objective' parameter of \
select_config must be a str among {'energy_j'}. Got 'watts' instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

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
]

#: A coverage probability in (0, 1).
LEVEL = Interval(Real, 0, 1, closed="neither")
#: A number > 0.
POSITIVE = Interval(Real, 0, None, closed="neither")
#: An integer >= 1.
POSITIVE_INT = Interval(Integral, 1, None, closed="left")


def check_options(owner: str, constraints: Mapping[str, list], values: Mapping[str, object]) -> None:
    """Validate ``values`` against ``constraints`` (scikit-learn's constraint language).

    Parameters
    ----------
    owner : str
        The function or class named in the message.
    constraints : mapping
        Option name -> list of allowed constraints (types, ``StrOptions``, ``Interval``,
        ``None``, ...).
    values : mapping
        Option name -> the value given. Names without a constraint are not checked.

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` (and ``TypeError``) naming the option, what is allowed and what
        was given.
    """
    validate_parameter_constraints(
        dict(constraints), {k: v for k, v in values.items() if k in constraints},
        caller_name=owner,
    )


def check_str_option(owner: str, name: str, value: object, allowed) -> str:
    """Check that ``value`` is one of the strings ``allowed`` and return it.

    Examples
    --------
    >>> check_str_option("discover", "per", "token", ("request", "token"))
    'token'
    """
    check_options(owner, {name: [StrOptions(set(allowed))]}, {name: value})
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
