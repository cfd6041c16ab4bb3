"""Closed-form energy models and the machinery they share."""

from .base import LOSSES, Parameter, ParametricModel
from .batch import BATCH_RULES, effective_batch, resolve_batch_rule
from .energylens import EnergyLensModel, energylens_jacobian, energylens_kernel

__all__ = [
    "LOSSES",
    "BATCH_RULES",
    "Parameter",
    "ParametricModel",
    "EnergyLensModel",
    "energylens_kernel",
    "energylens_jacobian",
    "effective_batch",
    "resolve_batch_rule",
]
