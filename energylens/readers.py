"""Readers of public measurement layouts (kept for compatibility).

They live in :mod:`energylens.tables.readers`, one module per source; every name that was
importable from here still is.
"""

from __future__ import annotations

from .tables.readers import (
    LAYOUTS,
    MLENERGY_NOMINAL_INPUT_TOKENS,
    MLENERGY_V3_TASKS,
    TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS,
    WILKINS_EXPERIMENTS,
    detect_layout,
    read_mlenergy_leaderboard,
    read_splitwise,
    read_tokenpowerbench,
    read_wilkins,
)

__all__ = [
    "read_mlenergy_leaderboard",
    "read_wilkins",
    "read_tokenpowerbench",
    "read_splitwise",
    "MLENERGY_NOMINAL_INPUT_TOKENS",
    "MLENERGY_V3_TASKS",
    "TOKENPOWERBENCH_NOMINAL_INPUT_TOKENS",
    "WILKINS_EXPERIMENTS",
    "LAYOUTS",
    "detect_layout",
]
