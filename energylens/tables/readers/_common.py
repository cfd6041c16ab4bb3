"""What every public-layout reader shares: finding its folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..parse import check_path
from ..problems import file_error

__all__ = ["folder"]


def folder(path: str | os.PathLike, what: str, expect: str) -> Path:
    """``path`` as a folder, or an error saying what was expected there.

    Raises
    ------
    FileNotFoundError
        When nothing is at ``path`` (also a broken link).
    SchemaError
        When ``path`` is a file or a symbolic link loop.
    """
    p = Path(path).expanduser()
    if not p.exists() and not p.is_symlink():
        raise FileNotFoundError(f"{what}: '{p}' does not exist; expected {expect}.")
    check_path(p, f"'{p}'")
    if not p.is_dir():
        raise file_error(f"'{p}'", f"is not a folder; {what} expects {expect}",
                         code="file.layout")
    return p
