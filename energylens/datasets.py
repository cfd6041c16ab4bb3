"""Where the public measurements and the shipped demo table live on disk.

energylens never downloads data. The public measurements (ML.ENERGY v2, Wilkins et al.
2024, TokenPowerBench, Splitwise) are read from a folder the user points to with the
``ENERGYLENS_REAL_DATA`` environment variable; by default ``../shared/data`` beside the
working directory or beside the source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REAL_DATA_ENV", "real_data_dir", "demo_table_path"]

#: Environment variable that overrides the folder of public measurements.
REAL_DATA_ENV = "ENERGYLENS_REAL_DATA"
_REPO = Path(__file__).resolve().parent.parent


def real_data_dir() -> Path | None:
    """Folder holding the public measurements, or None when it cannot be found.

    Looks at ``$ENERGYLENS_REAL_DATA``, then ``../shared/data`` relative to the current
    directory and to the source checkout.
    """
    env = os.environ.get(REAL_DATA_ENV)
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    for base in (Path.cwd(), _REPO):
        p = (base / ".." / "shared" / "data").resolve()
        if p.is_dir():
            return p
    return None


def demo_table_path() -> Path:
    """Path of the simulator-made demo table shipped in the repository's ``data/``."""
    for base in (Path.cwd(), Path.cwd().parent, _REPO):
        p = base / "data" / "demo_profiles.csv"
        if p.is_file():
            return p
    raise FileNotFoundError(
        "data/demo_profiles.csv not found: run from the energylens checkout, or make a table "
        "with energylens.simulate_profiles()."
    )
