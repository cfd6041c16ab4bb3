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
    "NotFittedError",
    "InfeasibleError",
    "NoDeviceError",
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


class NotFittedError(EnergyLensError, ValueError, AttributeError):
    """A model was used before ``fit`` (the same bases as scikit-learn's ``NotFittedError``)."""


class InfeasibleError(EnergyLensError, ValueError):
    """No candidate configuration satisfies the constraints."""


class NoDeviceError(EnergyLensError, RuntimeError):
    """No NVIDIA driver or GPU is available for energy measurement."""


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
