"""Closed forms that are linear in their parameters: ``f(V, theta) = A(V) @ theta``.

Their Jacobian is the basis matrix ``A(V)`` itself, and a relative-error least-squares
solve (non-negative where the bounds say so) gives the exact optimum of the relative loss
as the start, so the nonlinear fit converges at once.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from .base import ParametricModel, positive_start

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
        Aw = A[:, free] / scale[:, None] * np.sqrt(w)[:, None]
        b = (y - fixed_part) / scale * np.sqrt(w)
        norms = np.linalg.norm(Aw, axis=0)
        norms[norms == 0] = 1.0
        lo = np.array([p.lower for p in self._param_specs()])[free]
        nonneg = bool(np.all(lo >= 0))
        try:
            if nonneg:
                sol, _ = optimize.nnls(Aw / norms, b, maxiter=50 * Aw.shape[1])
            else:
                sol = np.linalg.lstsq(Aw / norms, b, rcond=None)[0]
        except (RuntimeError, np.linalg.LinAlgError):
            return theta
        sol = sol / norms
        if nonneg:
            # Strictly inside the bounds, so that 'trf' can move every parameter.
            sol = positive_start(Aw, b, sol)
        theta[free] = sol
        return theta
