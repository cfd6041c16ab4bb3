"""The models a comparison puts side by side: one list, shared by ``energylens compare``
and the HTML report, with the two reference lines (the rule of thumb and the 2%-noise
ceiling, :mod:`energylens.evaluation.reference`) beside them.

The hierarchical model fits the whole table at once (its groups partially pooled). The other
closed forms are fitted per group (``by``, default model and GPU) and fall back to one
model fitted on every training row for the rows of a group too small to fit (so a random
draw that leaves a group with one or two training rows still gives a prediction, marked by
the fallback, instead of failing the whole split). The ensembles are fitted on the pooled
table, with the labels as features, at scikit-learn's default sizes (100 trees, 100
boosting rounds) rather than the estimators' own 300, which take two to three times as long
for a held-out MAPE within about one standard deviation across seeds
(``benchmarks/report_speed.py`` prints both).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["COMPARISON_MODELS", "comparison_models"]

#: Names of the compared models, in the order tables and plots show them.
COMPARISON_MODELS: tuple[str, ...] = ("Hierarchical", "EnergyLens", "Wilkins", "Linear", "LogLinear",
                                      "RandomForest", "HistGradientBoosting", "RuleOfThumb",
                                      "NoiseCeiling2%")


def comparison_models(by: Sequence[str] = ("model", "gpu"), *, quick: bool = False) -> dict:
    """Fresh, unfitted estimators for a comparison, keyed by the names of
    :data:`COMPARISON_MODELS`.

    Parameters
    ----------
    by : sequence of str
        Group columns of the closed forms (those absent from a table are ignored).
    quick : bool
        Smaller ensembles (50 trees or boosting rounds instead of scikit-learn's default of
        100), for quick runs.

    Returns
    -------
    dict
        Name -> estimator; every estimator takes a canonical profiling table.

    Examples
    --------
    >>> list(comparison_models(quick=True))  # doctest: +NORMALIZE_WHITESPACE
    ['Hierarchical', 'EnergyLens', 'Wilkins', 'Linear', 'LogLinear', 'RandomForest',
     'HistGradientBoosting', 'RuleOfThumb', 'NoiseCeiling2%']
    """
    from ..models import (
        EnergyLensModel,
        GroupedModel,
        HierarchicalEnergyModel,
        LinearEnergyModel,
        LogLinearEnergyModel,
        WilkinsModel,
    )
    from ..models.ensemble import GradientBoostingEnergyModel, RandomForestEnergyModel
    from .reference import NoiseCeilingModel, RuleOfThumbModel

    by = tuple(by)
    size = 50 if quick else 100
    models = {
        # One form for the whole table (needs every model and GPU in the catalogue; a table
        # it cannot read records the reason as a failed fit).
        "Hierarchical": HierarchicalEnergyModel(),
        "EnergyLens": GroupedModel(EnergyLensModel(), by=by, fallback="pooled"),
        "Wilkins": GroupedModel(WilkinsModel(), by=by, fallback="pooled"),
        "Linear": GroupedModel(LinearEnergyModel(), by=by, fallback="pooled"),
        "LogLinear": GroupedModel(LogLinearEnergyModel(), by=by, fallback="pooled"),
        "RandomForest": RandomForestEnergyModel(n_estimators=size),
        "HistGradientBoosting": GradientBoostingEnergyModel(max_iter=size),
        # The two reference lines every selection result is read against.
        "RuleOfThumb": RuleOfThumbModel(),
        "NoiseCeiling2%": NoiseCeilingModel(),
    }
    return models
