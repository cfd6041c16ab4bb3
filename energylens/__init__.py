"""energylens: interpretable closed-form energy models for LLM inference.

Read a profiling table, discover the structure of energy over it, fit a closed form whose
parameters mean something physical, predict energy for configurations nobody measured,
and pick the most energy-efficient one.

Public names are loaded on first use, so ``import energylens`` stays fast and never
imports matplotlib, pyoperon or pysr.

Examples
--------
>>> import energylens
>>> df = energylens.read_profiles("data/demo_profiles.csv")  # doctest: +SKIP
>>> model = energylens.EnergyLensModel().fit(df)  # doctest: +SKIP
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._version import __version__
from .exceptions import (
    BackendUnavailableError,
    CatalogueError,
    ConvergenceWarning,
    EnergyLensError,
    EnergyLensWarning,
    ExtrapolationWarning,
    FitError,
    IdentifiabilityWarning,
    ImplausibleValueWarning,
    InfeasibleError,
    ModelFileError,
    NoDeviceError,
    PoorFitWarning,
    RunFailedError,
    SchemaError,
)

#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    # tables
    "read_profiles": "energylens.tables",
    "read_candidates": "energylens.tables",
    "detect_layout": "energylens.tables",
    "LAYOUTS": "energylens.tables",
    # closed-form models and their machinery
    "EnergyLensModel": "energylens.models",
    "SweetSpotModel": "energylens.models",
    "WilkinsModel": "energylens.models",
    "LinearEnergyModel": "energylens.models",
    "LogLinearEnergyModel": "energylens.models",
    "GroupedModel": "energylens.models",
    "HierarchicalEnergyModel": "energylens.models",
    "ParametricModel": "energylens.models",
    "Parameter": "energylens.models",
    "fit_groups": "energylens.models",
    "effective_batch": "energylens.models",
    "load_model": "energylens.models",
    # public measurement layouts
    "read_mlenergy_leaderboard": "energylens.tables",
    "read_wilkins": "energylens.tables",
    "read_tokenpowerbench": "energylens.tables",
    "read_splitwise": "energylens.tables",
    # structure discovery
    "discover": "energylens.discovery",
    "discover_phases": "energylens.discovery",
    "SymbolicEnergyRegressor": "energylens.discovery",
    "derive_model": "energylens.discovery",
    "ExpressionModel": "energylens.models",
    "DerivedEnergyModel": "energylens.models",
    # selection
    "select_config": "energylens.selection",
    "candidate_grid": "energylens.selection",
    "pareto_front": "energylens.selection",
    "suggest_next": "energylens.selection",
    "LatencyModel": "energylens.models",
    # synthetic data
    "simulate_profiles": "energylens.simulate",
    "SimulatorOracle": "energylens.simulate",
    # errors that need scikit-learn's bases (loaded on first use)
    "NotFittedError": "energylens.exceptions",
}
_SUBMODULES = {"schema", "models", "datasets", "plot", "simulate", "readers", "selection",
               "evaluation", "report", "cli", "discovery", "profile", "exceptions", "tables",
               "core"}

__all__ = [
    "__version__",
    *sorted(_SUBMODULES),
    *_LAZY,
    "EnergyLensError",
    "SchemaError",
    "BackendUnavailableError",
    "ModelFileError",
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


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f"energylens.{name}")
    raise AttributeError(f"module 'energylens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if _TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import datasets, models, schema
    from .discovery import SymbolicEnergyRegressor, discover, discover_phases
    from .models import (
        EnergyLensModel,
        ExpressionModel,
        GroupedModel,
        LatencyModel,
        LinearEnergyModel,
        LogLinearEnergyModel,
        Parameter,
        ParametricModel,
        SweetSpotModel,
        WilkinsModel,
        effective_batch,
        fit_groups,
        load_model,
    )
    from .readers import (
        read_mlenergy_leaderboard,
        read_splitwise,
        read_tokenpowerbench,
        read_wilkins,
    )
    from .schema import read_candidates, read_profiles
    from .selection import candidate_grid, pareto_front, select_config, suggest_next
    from .simulate import SimulatorOracle, simulate_profiles
