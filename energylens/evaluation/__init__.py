"""Metrics and evaluation protocols."""

from .metrics import (
    mape,
    median_ape,
    pairwise_accuracy,
    r2,
    random_pick_top1,
    regret,
    selection_metrics,
    top1_accuracy,
    within_tolerance_rate,
)
from .protocols import RESULT_COLUMNS, evaluate_split, extrapolate, sample_efficiency
from .reference import NoiseCeilingModel, RuleOfThumbModel
from .zoo import COMPARISON_MODELS, comparison_models

__all__ = [
    "mape", "median_ape", "r2", "top1_accuracy", "pairwise_accuracy", "regret",
    "within_tolerance_rate", "random_pick_top1", "selection_metrics",
    "sample_efficiency", "extrapolate", "evaluate_split", "RESULT_COLUMNS",
    "COMPARISON_MODELS", "comparison_models", "RuleOfThumbModel", "NoiseCeilingModel",
]
