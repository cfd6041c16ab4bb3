"""Closed forms that are linear in their parameters: ``f(V, theta) = A(V) @ theta``.

Their Jacobian is the basis matrix ``A(V)`` itself, and a relative-error least-squares
solve (non-negative where the bounds say so) gives the exact optimum of the relative loss
as the start, so the nonlinear fit converges at once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .base import ParametricModel

__all__ = ["LinearFormModel"]


class LinearFormModel(ParametricModel):
    """Base of closed forms linear in their parameters; subclasses implement ``_basis``."""

    def _basis(self, V: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _kernel(self, V, theta):
        return self._basis(V) @ theta

    def _jacobian(self, V, theta):
        return self._basis(V)

    def _param_specs(self):
        # Linear in every parameter: the data-driven start is the exact relative-error optimum.
        return tuple(replace(p, linear=True) for p in super()._param_specs())
