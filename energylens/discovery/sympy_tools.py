"""Deprecated location of :mod:`energylens.core.expressions` (kept so old imports work)."""

from ..core.expressions import *  # noqa: F401,F403
from ..core.expressions import __all__  # noqa: F401
