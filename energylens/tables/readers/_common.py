"""What every public-layout reader shares: finding its folder, and validating its rows with
messages that name the source file or entry of each offending row."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ...exceptions import SchemaError
from ..parse import check_path
from ..problems import file_error, render
from ..validate import validate

__all__ = ["folder", "validated"]


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


def validated(df: pd.DataFrame, where: str, origin: list[str], **kwargs) -> pd.DataFrame:
    """:func:`~energylens.tables.validate` of a reader's rows, whose problems also name where
    each offending row came from (``origin``: one text per row, e.g. the source file), since
    the row numbers of an assembled table mean nothing to its reader."""
    try:
        return validate(df, where=where, **kwargs)
    except SchemaError as exc:
        problems = exc.problems
        if not problems or len(origin) != len(df):
            raise
        for p in problems:
            pos = [i for i in p.get("positions") or [] if 0 <= i < len(origin)]
            if pos:
                src = "; ".join(dict.fromkeys(origin[i] for i in pos))
                p["detail"] = (p["detail"].rstrip() + " " if p["detail"] else "") + f"From: {src}."
        raise SchemaError(render(problems), problems=problems) from None
