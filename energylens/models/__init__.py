"""Closed-form energy models and the machinery they share.

Names are loaded on first use, so that importing one model does not import them all (the
expression model needs sympy).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LOSSES": ".base", "Parameter": ".parameters", "ParametricModel": ".base",
    "BATCH_RULES": "..core.batch", "effective_batch": "..core.batch",
    "resolve_batch_rule": "..core.batch",
    "EnergyLensModel": ".energylens", "energylens_kernel": ".energylens",
    "energylens_jacobian": ".energylens",
    "SweetSpotModel": ".sweetspot", "WilkinsModel": ".baselines", "LinearEnergyModel": ".baselines",
    "LogLinearEnergyModel": ".baselines", "GroupedModel": ".grouped", "fit_groups": ".grouped",
    "ExpressionModel": ".expression", "LatencyModel": ".latency", "DerivedEnergyModel": ".derived",
    "save_model": ".persistence", "load_model": ".persistence",
    "HierarchicalEnergyModel": ".hierarchical",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
