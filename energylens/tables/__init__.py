"""Profiling tables: the canonical columns, reading, validation and public layouts.

One row of a profiling table is one measured serving configuration; every reader ends in
:func:`validate`, so that the rest of the library can rely on the canonical columns, in
their units. The modules, in the order data flows through them:

- :mod:`~energylens.tables.columns`: the canonical columns (units, bounds, physical
  ranges), their aliases and unit suffixes;
- :mod:`~energylens.tables.sniff` and :mod:`~energylens.tables.parse`: bytes to a raw
  table (compression, encoding, delimiter, strict field counts);
- :mod:`~energylens.tables.headers`: a table's headers to canonical names and units;
- :mod:`~energylens.tables.validate`: types, bounds, defaults, derived columns, with
  :mod:`~energylens.tables.duplicates` and :mod:`~energylens.tables.plausibility`;
- :mod:`~energylens.tables.problems`: every problem of a table in one
  :class:`~energylens.SchemaError`;
- :mod:`~energylens.tables.readers`: the public measurement layouts (ML.ENERGY v2/v3,
  Wilkins 2024, TokenPowerBench, Splitwise);
- :mod:`~energylens.tables.read`: :func:`read_profiles` and :func:`read_candidates`.

Batch columns
-------------
``batch_size`` is what the source calls its batch, per replica; ``batch_kind`` says what it
means: ``"running"`` (the default) for a measured mean concurrency, ``"cap"`` for a
configured maximum. A header that names a cap (``max_num_seqs``, ``Max BS (reqs)`` ...) is
read into ``batch_size`` and sets ``batch_kind="cap"`` unless the table has its own
``batch_kind`` column. ``running_batch`` is the measured mean concurrency per replica and is
kept beside ``batch_size``; where ``batch_kind == "cap"`` it may not exceed ``batch_size``.
A table with two headers for one canonical column is rejected, naming both.

Derived columns (``n_gpus``, ``energy_per_output_token_j``) are always recomputed.

Examples
--------
>>> import pandas as pd
>>> from energylens.tables import read_profiles
>>> df = read_profiles(pd.DataFrame({"model": ["m"], "gpu": ["H100"], "TP": [2], "bs": [8],
...                                  "isl": [512], "osl": [128], "Energy (Wh)": [0.01]}))
>>> int(df.tp[0]), float(df.batch_size[0]), float(df.energy_j[0]), int(df.n_gpus[0])
(2, 8.0, 36.0, 2)
"""

from .columns import (
    ALIASES,
    CAP_ALIASES,
    COLUMNS,
    CONFIG_COLUMNS,
    MAX_DEGREE,
    REQUIRED_COLUMNS,
    UNITS,
    Column,
    config_key,
    describe_schema,
)
from .headers import canonical_frame, resolve_header
from .problems import explain, python_spelling
from .read import read_candidates, read_profiles
from .readers import (
    LAYOUTS,
    MLENERGY_NOMINAL_INPUT_TOKENS,
    MLENERGY_V3_TASKS,
    TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS,
    WILKINS_EXPERIMENTS,
    Layout,
    detect_layout,
    read_mlenergy_leaderboard,
    read_splitwise,
    read_tokenpowerbench,
    read_wilkins,
)
from .validate import validate

__all__ = [
    "read_profiles",
    "read_candidates",
    "validate",
    "describe_schema",
    "read_mlenergy_leaderboard",
    "read_wilkins",
    "read_tokenpowerbench",
    "read_splitwise",
    "LAYOUTS",
    "Layout",
    "detect_layout",
    "explain",
    "python_spelling",
    "Column",
    "COLUMNS",
    "ALIASES",
    "UNITS",
    "CONFIG_COLUMNS",
    "REQUIRED_COLUMNS",
    "CAP_ALIASES",
    "MAX_DEGREE",
    "config_key",
    "canonical_frame",
    "resolve_header",
    "MLENERGY_NOMINAL_INPUT_TOKENS",
    "MLENERGY_V3_TASKS",
    "TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS",
    "WILKINS_EXPERIMENTS",
]
