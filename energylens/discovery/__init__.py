"""Structure discovery: symbolic regression turned into refittable closed forms.

:func:`discover` searches a profiling table for formulas of energy as a function of the
configuration and returns a :class:`DiscoveryResult`: a Pareto front with one selected
formula, which prints with a legend of its symbols, exports to sympy and LaTeX and becomes
an :class:`~energylens.models.expression.ExpressionModel` fitted like every other closed
form. :class:`SymbolicEnergyRegressor` is the same search as a scikit-learn estimator.
:func:`derive_model` goes one step further: it searches a library of physically motivated
terms, pooled over groups and phase by phase, keeps the terms that are stable under
bootstrap resampling and returns a :class:`~energylens.models.derived.DerivedEnergyModel`
whose parameters are named after their terms.

The search is an engine object with its own settings (:mod:`~energylens.discovery.engines`):
:class:`TermSearch` (deterministic term-library search), :class:`Operon` (pyoperon) or
:class:`PySR` (where Julia works); the names ``"auto"``, ``"terms"``, ``"operon"`` and
``"pysr"`` stand for them with their default settings.
"""

from __future__ import annotations

from ..core.expressions import parse_expression, parse_pysr_equation
from .base import SELECTIONS, DiscoveryResult, Selection, equations_table, select_index
from .derive import Derivation, default_derive_engine, derive_model, physical_library
from .engines import ENGINES, Candidate, Engine, Front, Operon, PySR, TermSearch, resolve_engine
from .regressor import DEFAULT_TRANSFORMS, SymbolicEnergyRegressor, discover, discover_phases

__all__ = [
    "discover",
    "discover_phases",
    "derive_model",
    "default_derive_engine",
    "physical_library",
    "Derivation",
    "DiscoveryResult",
    "SymbolicEnergyRegressor",
    "Engine",
    "TermSearch",
    "Operon",
    "PySR",
    "Front",
    "Candidate",
    "ENGINES",
    "resolve_engine",
    "DEFAULT_TRANSFORMS",
    "SELECTIONS",
    "Selection",
    "equations_table",
    "parse_expression",
    "parse_pysr_equation",
    "select_index",
]
