"""The canonical profiling table (kept for compatibility; see :mod:`energylens.tables`).

Every name that lived here still imports from here; new code imports from
:mod:`energylens.tables` (``read_profiles``, ``validate``, ``describe_schema``,
``COLUMNS`` ...).
"""

from __future__ import annotations

from .tables.columns import (
    ALIASES,
    CAP_ALIASES,
    COLUMNS,
    CONFIG_COLUMNS,
    DIMENSION,
    MAX_DEGREE,
    REQUIRED_COLUMNS,
    UNITS,
    Column,
    config_key,
    describe_schema,
    normalise_header,
    stem,
)
from .tables.headers import canonical_frame, resolve_header, unit_factor
from .tables.read import read_candidates, read_profiles
from .tables.validate import validate
from .tables.values import to_numeric

__all__ = [
    "Column",
    "COLUMNS",
    "ALIASES",
    "UNITS",
    "CONFIG_COLUMNS",
    "REQUIRED_COLUMNS",
    "describe_schema",
    "read_profiles",
    "read_candidates",
    "validate",
    "config_key",
]

# Former private names, for code that reached into this module.
_CAP_ALIASES = CAP_ALIASES
_MAX_DEGREE = MAX_DEGREE
_DIMENSION = DIMENSION
_norm = normalise_header
_stem = stem
_resolve_header = resolve_header
_unit_factor = unit_factor
_to_numeric = to_numeric
_canonical_frame = canonical_frame
