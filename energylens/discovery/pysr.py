"""Deprecated location of :mod:`energylens.discovery.engines.pysr` (kept so old imports work)."""

from .engines.pysr import (
    ENABLE_HINT,
    PYSR_BINARY,
    PYSR_UNARY,
    PySR,
    probe_pysr,
    read_hall_of_fame,
    require_pysr,
)

__all__ = ["ENABLE_HINT", "PySR", "probe_pysr", "require_pysr", "read_hall_of_fame", "PYSR_BINARY",
           "PYSR_UNARY"]
