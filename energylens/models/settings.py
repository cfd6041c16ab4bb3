"""Constructor parameters as a fitted estimator knows them.

As in scikit-learn, ``set_params`` on a fitted estimator changes what the next ``fit`` does,
never the fitted state: a model fitted with ``size_covariate=None`` keeps predicting, reporting
and saving as such until it is fitted again. ``fit`` runs inside :meth:`FittedParams._fitting`,
which records the constructor parameters in ``fitted_params_``; whatever reads a parameter
after the fit (the kernel, intervals, reports, model files) reads it through
:meth:`FittedParams._setting`.
"""

from __future__ import annotations

import contextlib
import copy

__all__ = ["FittedParams", "snapshot"]


def snapshot(estimator) -> dict:
    """The estimator's constructor parameters, copied (an estimator among them is cloned, so
    that changing the one passed in does not change the record)."""
    from sklearn.base import clone

    return {k: clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else copy.deepcopy(v)
            for k, v in estimator.get_params(deep=False).items()}


class FittedParams:
    """Mixin of estimators whose fitted state records the parameters it was fitted with.

    Attributes
    ----------
    fitted_params_ : dict
        The constructor parameters at the last successful ``fit`` (or as read from a model
        file); predictions, intervals, reports and files use these, whatever ``set_params``
        changed since.
    """

    def _setting(self, name: str):
        """A constructor parameter as the fitted state knows it: its value at the last fit,
        or the current value before the first one."""
        fitted = self.__dict__.get("fitted_params_") or {}
        return fitted[name] if name in fitted else getattr(self, name)

    @contextlib.contextmanager
    def _fitting(self):
        """Record the parameters for the fit run inside the block; a fit that fails restores
        the record of the previous fit (or none)."""
        previous = self.__dict__.get("fitted_params_")
        self.fitted_params_ = snapshot(self)
        try:
            yield
        except BaseException:
            if previous is None:
                self.__dict__.pop("fitted_params_", None)
            else:
                self.fitted_params_ = previous
            raise
