"""Closed-form energy models and the machinery they share."""

from .base import LOSSES, Parameter, ParametricModel
from .baselines import LinearEnergyModel, LogLinearEnergyModel, WilkinsModel
from .batch import BATCH_RULES, effective_batch, resolve_batch_rule
from .energylens import EnergyLensModel, energylens_jacobian, energylens_kernel
from .expression import ExpressionModel
from .grouped import GroupedModel, fit_groups
from .latency import LatencyModel
from .persistence import load_model, save_model
from .sweetspot import SweetSpotModel

__all__ = [
    "LOSSES",
    "BATCH_RULES",
    "Parameter",
    "ParametricModel",
    "EnergyLensModel",
    "SweetSpotModel",
    "WilkinsModel",
    "LinearEnergyModel",
    "LogLinearEnergyModel",
    "GroupedModel",
    "ExpressionModel",
    "LatencyModel",
    "fit_groups",
    "energylens_kernel",
    "energylens_jacobian",
    "effective_batch",
    "resolve_batch_rule",
    "save_model",
    "load_model",
]
