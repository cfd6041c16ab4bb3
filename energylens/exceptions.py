"""Exception and warning hierarchy of energylens.

Every error the library raises on purpose derives from :class:`EnergyLensError`, and
where a builtin exception has the same meaning the class derives from it too, so that
``except ValueError`` keeps working for callers who do not know energylens.
"""

from __future__ import annotations

__all__ = [
    "EnergyLensError",
    "SchemaError",
    "BackendUnavailableError",
    "ModelFileError",
    "NotFittedError",  # noqa: F822 - built on first use, see __getattr__ below
    "FitError",
    "InfeasibleError",
    "NoDeviceError",
    "RunFailedError",
    "CatalogueError",
    "EnergyLensWarning",
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "ImplausibleValueWarning",
    "PoorFitWarning",
    "ExtrapolationWarning",
]


class EnergyLensError(Exception):
    """Root of every error raised by energylens."""


class SchemaError(EnergyLensError, ValueError):
    """A profiling table breaks the canonical schema.

    The message names the source (file or ``<DataFrame>``), every offending column,
    up to five offending rows per problem, the rule that was broken and the bad values.
    ``problems`` holds the same information as a list of dicts.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class BackendUnavailableError(EnergyLensError, ImportError):
    """An optional backend (PySR, pyoperon, matplotlib, xgboost, NVML) cannot be used."""


class ModelFileError(EnergyLensError, ValueError):
    """A saved model file is missing keys, has the wrong version or holds bad numbers."""


class FitError(EnergyLensError, ValueError):
    """The data cannot support the fit asked for (too few rows, no variation, bad targets)."""


class InfeasibleError(EnergyLensError, ValueError):
    """No candidate configuration satisfies the constraints."""


class NoDeviceError(EnergyLensError, RuntimeError):
    """No NVIDIA driver or GPU is available for energy measurement."""


class RunFailedError(EnergyLensError, RuntimeError):
    """A user's ``run_fn`` raised on a configuration of
    :func:`~energylens.profile.profile_grid`.

    The message names the configuration; the original exception is the ``__cause__``.

    Attributes
    ----------
    config : dict
        The configuration ``run_fn`` was called with.
    table : DataFrame
        The rows measured before it in this call (not validated; with ``out`` they are also
        in that file, and a resumed sweep skips them).
    """

    def __init__(self, message: str, config: dict, table):
        super().__init__(message)
        self.config = config
        self.table = table


class CatalogueError(EnergyLensError, ValueError):
    """A GPU or model name the catalogue cannot resolve, a descriptor it lacks, or a bad row."""


class EnergyLensWarning(UserWarning):
    """Root of every warning emitted by energylens."""


class ConvergenceWarning(EnergyLensWarning):
    """A fit did not converge, or a parameter ended at one of its bounds."""


class IdentifiabilityWarning(EnergyLensWarning):
    """Some parameters cannot be identified from the training data and were fixed."""


class ImplausibleValueWarning(EnergyLensWarning):
    """Values are valid but implausible (often the signature of a unit mistake)."""


class PoorFitWarning(EnergyLensWarning):
    """A fit converged but its in-sample error is large."""


class ExtrapolationWarning(EnergyLensWarning):
    """Predictions for configurations outside the data the model was fitted on."""


def __getattr__(name: str):
    # NotFittedError derives from scikit-learn's, so that ``except NotFittedError`` works with
    # either import; it is built on first use so that ``import energylens`` does not load
    # scikit-learn (which takes most of a second).
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

        class NotFittedError(EnergyLensError, _SklearnNotFittedError):
            """A model was used before ``fit`` (also scikit-learn's ``NotFittedError``)."""

        NotFittedError.__module__ = __name__
        globals()["NotFittedError"] = NotFittedError
        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
