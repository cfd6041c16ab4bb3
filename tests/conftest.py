"""Shared fixtures: the public measurements folder and small simulator tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from energylens.datasets import REAL_DATA_ENV, real_data_dir

TESTS = Path(__file__).parent


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the public measurements; skips the test where it is absent."""
    path = real_data_dir()
    if path is None:
        pytest.skip(
            f"public measurements not found: set {REAL_DATA_ENV} or place them in "
            "../shared/data (see docs/data.md)"
        )
    return path
