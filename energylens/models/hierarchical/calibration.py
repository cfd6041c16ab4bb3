"""Intervals for a model absent from training, calibrated by leaving each model out.

The interval of a new model adds, for every level it is new at, the spreads of that level's
parameters as if their deviations were independent (:func:`~.uncertainty.new_level_variance`).
Measured by leaving one model out, that sd is far too wide on ML.ENERGY v3 (50% / 90%
coverage 0.83 / 0.98: the spreads of weakly identified parameters are mostly their priors,
and one outlying model inflates them) and too narrow at 90% on v2 (0.51 / 0.81: a few small
models sit 0.3-0.4 in log away from what the others predict, which no in-sample spread
sees). With ``calibrate="models"`` the fit leaves each training model out once, refits,
and scores the held-out rows' errors against the sd the refit gives them,
``|log measured - log predicted| / sd``; a new model's interval then uses the scores'
quantile in place of the uncalibrated one (split-conformal prediction over models: the sd keeps
its shape across rows, the data set its scale). Point predictions do not change.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import clone

from ...exceptions import EnergyLensWarning

__all__ = ["MIN_CALIBRATION_MODELS", "calibrated_scores", "new_model_scores", "new_model_quantile"]

#: Models a table needs for ``calibrate="models"``: fewer scores of held-out models would
#: set the 90% quantile from one or two of them.
MIN_CALIBRATION_MODELS = 10


def _held_out_scores(model, X: pd.DataFrame, y: np.ndarray, held: np.ndarray) -> np.ndarray:
    sub = clone(model).set_params(calibrate="none", n_jobs=1)  # the refits run side by side
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub.fit(X[~held], y[~held])
        pi = sub.predict_interval(X[held], level=0.5)
    sd = pi["log_sd"].to_numpy(dtype=float)
    err = np.abs(np.log(y[held] / pi["energy_j"].to_numpy(dtype=float)))
    return err / sd


def new_model_scores(model, X: pd.DataFrame, y: np.ndarray, models: np.ndarray,
                     n_jobs: int | None = None) -> np.ndarray | None:
    """The sorted scores of every training row, each scored by a refit without its model
    (None, with a warning, for a table of fewer than :data:`MIN_CALIBRATION_MODELS` models).

    ``models`` is each row's model as the fit labels it; the refits run through joblib.

    Examples
    --------
    >>> from energylens.models.hierarchical import HierarchicalEnergyModel, form_table
    >>> names = ["Llama-3.1-8B", "Qwen3-8B", "Mistral-7B", "Qwen3-14B", "gemma-2-9b",
    ...          "Llama-3.1-70B", "Qwen3-32B", "gemma-2-27b", "Llama-3.2-1B", "Llama-3.2-3B"]
    >>> t, _ = form_table(names, ["H100-SXM"], rows_per_group=6, seed=0)
    >>> m = HierarchicalEnergyModel(calibrate="models").fit(t)
    >>> len(m.new_model_scores_) == len(t), bool(np.all(np.diff(m.new_model_scores_) >= 0))
    (True, True)
    """
    names = pd.unique(models)
    if len(names) < MIN_CALIBRATION_MODELS:
        warnings.warn(f"HierarchicalEnergyModel: calibrate='models' needs at least "
                      f"{MIN_CALIBRATION_MODELS} models in the table to score held-out models; "
                      f"it has {len(names)}: intervals of a new model keep the uncalibrated quantile.",
                      EnergyLensWarning, stacklevel=5)
        return None
    parts = Parallel(n_jobs=n_jobs)(delayed(_held_out_scores)(model, X, y, models == u)
                                    for u in names)
    return np.sort(np.concatenate(parts))


def calibrated_scores(model, X: pd.DataFrame, y: np.ndarray) -> np.ndarray | None:
    """``new_model_scores_`` of a fit on ``X``, ``y``: None unless ``calibrate="models"``."""
    if model.calibrate != "models":
        return None
    from ..grouped import _n_jobs

    models = model._labels(X, model._group_columns(X))["model"].to_numpy(dtype=object)
    return new_model_scores(model, X, y, models, _n_jobs(model.n_jobs))


def new_model_quantile(scores: np.ndarray, level: float, dof: float = np.inf) -> float:
    """The conformal quantile of ``scores`` at ``level``: the ``ceil((n + 1) level)``-th
    smallest; beyond the largest score (a level the scores cannot speak for), the larger of
    the largest score and the uncalibrated quantile (Student-t on ``dof`` degrees of freedom,
    normal by default), never a narrower interval than uncalibrated.

    Examples
    --------
    >>> new_model_quantile(np.arange(1.0, 20.0), 0.9)
    18.0
    >>> round(new_model_quantile(np.arange(1.0, 20.0) / 10, 0.999), 3)  # normal: 3.291
    3.291
    """
    n = len(scores)
    k = max(1, math.ceil((n + 1) * level))
    if k > n:
        return float(max(scores[-1], stats.t.ppf(0.5 + level / 2, dof)))
    return float(scores[k - 1])
