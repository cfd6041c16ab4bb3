"""energylens: interpretable closed-form energy models for LLM inference."""

from ._version import __version__
from .exceptions import (
    BackendUnavailableError,
    ConvergenceWarning,
    EnergyLensError,
    EnergyLensWarning,
    IdentifiabilityWarning,
    ImplausibleValueWarning,
    InfeasibleError,
    ModelFileError,
    NoDeviceError,
    NotFittedError,
    PoorFitWarning,
    SchemaError,
)
from . import schema
from .schema import read_profiles

__all__ = [
    "__version__",
    "schema",
    "read_profiles",
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
]
