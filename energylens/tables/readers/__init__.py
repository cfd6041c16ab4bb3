"""Readers of public measurement layouts, one module per source.

Each reader takes a local folder the user points to (nothing is downloaded), keeps the
source's own numbers, fills the canonical columns the source has, adds a ``source``
column, and ends with :func:`energylens.tables.validate`, so that
``read_profiles(reader_output)`` returns the same table. Where a source does not record a
quantity the schema requires (the prompt length of ML.ENERGY and TokenPowerBench), the
reader fills a documented nominal value and flags it in ``input_tokens_assumed``.

- :func:`read_mlenergy_leaderboard`: ML.ENERGY leaderboard v2 and v3 (vLLM at saturation).
- :func:`read_wilkins`: Wilkins, Keshav and Mortier (2024), one query at a time.
- :func:`read_tokenpowerbench`: TokenPowerBench (2025), vLLM and DeepSpeed batch runs.
- :func:`read_splitwise`: Splitwise latency profiles (no energy; latency columns only).

:data:`LAYOUTS` and :func:`detect_layout` tell the layouts apart.
"""

from .layouts import LAYOUTS, Layout, detect_layout, read_layout
from .mlenergy import (
    MLENERGY_NOMINAL_INPUT_TOKENS,
    MLENERGY_V3_TASKS,
    mlenergy_version,
    read_mlenergy_leaderboard,
)
from .splitwise import read_splitwise
from .tokenpowerbench import TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS, read_tokenpowerbench
from .wilkins import WILKINS_EXPERIMENTS, read_wilkins

__all__ = [
    "read_mlenergy_leaderboard",
    "read_wilkins",
    "read_tokenpowerbench",
    "read_splitwise",
    "LAYOUTS",
    "Layout",
    "detect_layout",
    "read_layout",
    "mlenergy_version",
    "MLENERGY_NOMINAL_INPUT_TOKENS",
    "MLENERGY_V3_TASKS",
    "TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS",
    "WILKINS_EXPERIMENTS",
]
