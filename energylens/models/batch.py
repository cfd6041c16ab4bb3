"""Deprecated location of :mod:`energylens.core.batch` (kept so old imports work)."""

from ..core.batch import *  # noqa: F401,F403
from ..core.batch import __all__  # noqa: F401
