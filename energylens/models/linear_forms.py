"""Closed forms that are linear in their parameters: ``f(V, theta) = A(V) @ theta``.

Their Jacobian is the basis matrix ``A(V)`` itself, and a relative-error least-squares
solve (non-negative where the bounds say so) gives the exact optimum of the relative loss
as the start, so the nonlinear fit converges at once.
"""

from __future__ import annotations

import numpy as np

from .base import ParametricModel
from .least_squares import lstsq_linear

__all__ = ["LinearFormModel"]


class LinearFormModel(ParametricModel):
    """Base of closed forms linear in their parameters; subclasses implement ``_basis``."""

    def _basis(self, V: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _kernel(self, V, theta):
        return self._basis(V) @ theta

    def _jacobian(self, V, theta):
        return self._basis(V)

    def _initial_guess(self, V, y, w, theta0, free):
        theta = theta0.copy()
        A = self._basis(V)
        fixed_part = A[:, ~free] @ theta[~free] if (~free).any() else 0.0
        scale = y if self.loss != "absolute" else np.ones_like(y)
        sw = np.sqrt(w)
        lo = np.array([p.lower for p in self._param_specs()])[free]
        sol = lstsq_linear(A[:, free] * (sw / scale)[:, None], (y - fixed_part) / scale * sw,
                           nonneg=bool(np.all(lo >= 0)))
        if sol is not None:
            theta[free] = sol
        return theta
