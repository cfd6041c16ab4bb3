"""The noise-free simulator as a scikit-learn regressor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from ..core.options import check_fitted
from .specs import Precision, _precision
from .table import _CONFIG_NEEDS, _simulate_rows

__all__ = ["SimulatorOracle"]


class SimulatorOracle(RegressorMixin, BaseEstimator):
    """The simulator without noise, as a regressor: ``predict(X)`` is the true energy.

    ``fit`` learns nothing: it checks the table and records the settings, so that
    selection and evaluation protocols can be tested against the truth.

    Parameters
    ----------
    precision : str or None
        Precision of the weights the simulator assumes for every row (``"bf16"``,
        ``"fp8"``, ...). None reads each row's precision as
        :func:`~energylens.simulate.simulate_configurations` does: its ``precision``
        column where given, else the model name's precision word (``-FP8``), else the
        checkpoint's.

    Attributes
    ----------
    precision_ : str or None
        The precision setting used by ``predict``.

    Examples
    --------
    >>> import numpy as np, energylens
    >>> df = energylens.simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], noise=0.0)
    >>> oracle = energylens.SimulatorOracle().fit(df)
    >>> bool(np.allclose(oracle.predict(df), df["energy_j"]))
    True
    """

    def __init__(self, *, precision: Precision | None = None):
        self.precision = precision

    def fit(self, X: pd.DataFrame, y=None, sample_weight=None) -> SimulatorOracle:
        """Check ``X`` (a canonical table) and record the settings; ``y`` is ignored."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError("SimulatorOracle needs a canonical profiling table (a DataFrame); "
                             f"got {type(X).__name__}.")
        missing = [c for c in _CONFIG_NEEDS if c not in X.columns]
        if missing:
            raise ValueError(f"SimulatorOracle.fit: the table lacks the columns {missing}.")
        self.precision_ = None if self.precision is None else _precision(self.precision)
        return self

    def _sim(self, X: pd.DataFrame) -> pd.DataFrame:
        check_fitted(self, "precision_")
        return _simulate_rows(X, self.precision_)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Noise-free energy per request (J) of each configuration; NaN where infeasible."""
        return self._sim(X)["energy_j"].to_numpy(dtype=float)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Dynamic prefill, dynamic decode and static (idle) energy per request, J.

        ``static_j`` is the idle power of every GPU of the configuration over the whole
        run; ``prefill_j`` and ``decode_j`` are what the GPUs draw above idle in each phase.
        The three sum to :meth:`predict` (the table's ``prefill_energy_j`` and
        ``decode_energy_j`` instead include the idle power during each phase).
        """
        s = self._sim(X)
        cols = {"prefill_j": "_prefill_dyn", "decode_j": "_decode_dyn", "static_j": "_static"}
        return pd.DataFrame({k: s[v] if v in s.columns else np.nan for k, v in cols.items()},
                            index=X.index).astype(float)
