"""Two reference lines to read every selection result against.

``RuleOfThumbModel``
    Ranks the candidates of a scenario by the GPUs each request in flight holds,
    ``tp * pp / batch_size``, fitted on nothing. A model earns its keep only above it.
``NoiseCeilingModel``
    The truth of the rows it predicts, times lognormal noise of 2% (repeated runs of one
    configuration differ by about 0.7-2%). No model can be expected above it: a third of
    ML.ENERGY v2's scenarios have their two best candidates within 2%.

Both are scikit-learn estimators so that they go through the same protocols as the models
(:func:`~energylens.evaluation.sample_efficiency`). The rule of thumb predicts a score, not
joules (``ranks_only = True``: the protocols record its selection metrics, never its MAPE);
the ceiling reads the measured energy of the rows it is asked about (``oracle = True``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from ..core.options import Interval, Real, check_fitted
from ..core.variables import check_positive_column

__all__ = ["RuleOfThumbModel", "NoiseCeilingModel"]


def _table(X, owner: str, need: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"{owner} needs a canonical table (DataFrame); got {type(X).__name__}.")
    missing = [c for c in need if c not in X.columns]
    if missing:
        raise ValueError(f"{owner} needs the column(s) {missing}; the table has {list(map(str, X.columns))}.")
    return X


class RuleOfThumbModel(RegressorMixin, BaseEstimator):
    """Rank configurations by GPUs per request in flight, ``tp * pp / batch_size``.

    Fitted on nothing: ``fit`` only checks the table. ``predict`` returns the score (lower
    is better), not energy, so use it to rank the candidates of one scenario only.

    Examples
    --------
    >>> import pandas as pd
    >>> cand = pd.DataFrame({"tp": [1, 2, 4], "pp": [1, 1, 1], "batch_size": [8.0, 64.0, 64.0]})
    >>> RuleOfThumbModel().fit(cand).predict(cand).tolist()
    [0.125, 0.03125, 0.0625]
    """

    #: The prediction is a ranking score, not joules (protocols skip its MAPE).
    ranks_only: ClassVar[bool] = True

    def fit(self, X, y=None):
        """Check that ``X`` has ``tp`` and ``batch_size``; nothing is learned."""
        _table(X, "RuleOfThumbModel", ("tp", "batch_size"))
        self.n_features_in_ = 3
        self.fitted_ = True
        return self

    def predict(self, X) -> np.ndarray:
        """``tp * pp / batch_size`` per row (``pp`` is 1 where the table has none); every
        value must be a number > 0 (a batch of 0 would score inf, a negative one best)."""
        check_fitted(self, "fitted_")
        X = _table(X, "RuleOfThumbModel", ("tp", "batch_size"))
        cols = {c: pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
                for c in ("tp", "pp", "batch_size") if c in X.columns}
        for c, v in cols.items():
            check_positive_column(v, X, c, "RuleOfThumbModel")
        return cols["tp"] * cols.get("pp", 1.0) / cols["batch_size"]


class NoiseCeilingModel(RegressorMixin, BaseEstimator):
    """The measured energy of each row it predicts, times lognormal noise.

    Parameters
    ----------
    noise : float, default=0.02
        Standard deviation of the log noise (2%: repeated runs differ by 0.7-2%).
    target : str, default="energy_j"
        Column holding the truth.
    random_state : int, default=0
        Seed of the noise.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"energy_j": [100.0, 200.0]})
    >>> pred = NoiseCeilingModel(noise=0.0).fit(rows).predict(rows)
    >>> pred.tolist()
    [100.0, 200.0]
    """

    #: It reads the truth of the rows it predicts: a reference line, not a model.
    oracle: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict] = {
        "noise": [Interval(Real, 0, None, closed="left")], "target": [str],
        "random_state": [int, None],
    }

    def __init__(self, *, noise: float = 0.02, target: str = "energy_j", random_state: int | None = 0):
        self.noise = noise
        self.target = target
        self.random_state = random_state

    def fit(self, X, y=None):
        """Check the options; nothing is learned."""
        self._validate_params()
        self.fitted_ = True
        return self

    def predict(self, X) -> np.ndarray:
        """The truth times ``exp(noise * z)``, z standard normal (seeded)."""
        check_fitted(self, "fitted_")
        X = _table(X, "NoiseCeilingModel", (self.target,))
        truth = X[self.target].to_numpy(float)
        rng = np.random.default_rng(self.random_state)
        return truth * np.exp(self.noise * rng.standard_normal(len(truth)))
