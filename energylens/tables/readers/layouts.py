"""The public measurement layouts a folder can hold, and how to tell them apart.

:data:`LAYOUTS` names each layout with what its folder looks like and the reader that
reads it; :func:`detect_layout` looks at a folder's files (never their contents beyond
names) and says which layout it holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..parse import check_path
from ..problems import file_error
from .mlenergy import read_mlenergy_leaderboard, v2_root, v3_root
from .splitwise import read_splitwise
from .tokenpowerbench import TPB_NAME, read_tokenpowerbench
from .wilkins import read_wilkins

__all__ = ["Layout", "LAYOUTS", "detect_layout", "read_layout"]


@dataclass(frozen=True)
class Layout:
    """One public measurement layout.

    Attributes
    ----------
    name : str
        The name ``layout=`` takes (``"mlenergy-v3"``).
    title : str
        The source, in words.
    looks_like : str
        What a folder of this layout holds.
    detect : callable
        ``Path -> bool``: whether a folder holds this layout.
    read : callable
        ``Path -> DataFrame``: the reader.
    energy : bool
        Whether the layout measures energy (Splitwise records latency only).
    """

    name: str
    title: str
    looks_like: str
    detect: Callable[[Path], bool]
    read: Callable[[Path], pd.DataFrame]
    energy: bool = True


def _wilkins(p: Path) -> bool:
    return any(p.glob("plots/*/all-*.csv")) or any(p.glob("*-test/all-*.csv"))


def _tokenpowerbench(p: Path) -> bool:
    return any(TPB_NAME.match(f.name) for d in (p, p / "results") for f in d.glob("*.json"))


def _splitwise(p: Path) -> bool:
    return (p / "perf_model.csv").is_file()


LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in [
    Layout("mlenergy-v2", "ML.ENERGY leaderboard v2 (2024)",
           "llm_text_generation/<task>/<GPU>/<org>/<model>/bs{B}+tp{T}+pp{P}.json",
           lambda p: v2_root(p) is not None and v3_root(p) is None,
           lambda p: read_mlenergy_leaderboard(p, version="v2")),
    Layout("mlenergy-v3", "ML.ENERGY leaderboard v3 (2025-26)",
           "tasks/<task>.json (with index.json and models/)",
           lambda p: v3_root(p) is not None,
           lambda p: read_mlenergy_leaderboard(p, version="v3")),
    Layout("wilkins", "Wilkins, Keshav and Mortier (2024)",
           "plots/<experiment>/all-*.csv (input-test, output-test, ...)", _wilkins,
           read_wilkins),
    Layout("tokenpowerbench", "TokenPowerBench (2025)",
           "{engine}_models--{model}_{batch}_{max_tokens}_{timestamp}.json result files",
           _tokenpowerbench, read_tokenpowerbench),
    Layout("splitwise", "Splitwise latency profiles (2024; latency only, no energy)",
           "perf_model.csv", _splitwise, read_splitwise, energy=False),
]}


def _described() -> str:
    return "; ".join(f"{lay.name}: {lay.looks_like}" for lay in LAYOUTS.values())


def detect_layout(path: str | os.PathLike) -> str:
    """The layout of ``path``: ``"table"`` for a file, a :data:`LAYOUTS` name for a folder.

    Raises
    ------
    SchemaError
        For a folder that matches no layout (listing what each looks like, and any
        subfolders that do match) or several.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "perf_model.csv").write_text("model,hardware\\n")
    >>> detect_layout(d), detect_layout(d / "perf_model.csv")
    ('splitwise', 'table')
    """
    p = Path(path).expanduser()
    where = f"'{p}'"
    check_path(p, where)
    if not p.is_dir():
        return "table"
    found = [lay.name for lay in LAYOUTS.values() if lay.detect(p)]
    if len(found) == 1:
        return found[0]
    if found:
        raise file_error(where, f"the folder matches several layouts {found}", code="layout",
                         advice=[{"option": "layout", "value": found[0],
                                  "effect": "to choose one"}])
    inside = []
    for sub in sorted(q for q in p.iterdir() if q.is_dir())[:50]:
        hits = [lay.name for lay in LAYOUTS.values() if lay.detect(sub)]
        if len(hits) == 1:
            inside.append(f"'{sub.name}' ({hits[0]})")
    hint = (f" Subfolders that hold one: {', '.join(inside)}." if inside else "")
    raise file_error(where, "the folder holds no known measurement layout. A table is one "
                            f"file (.csv, .tsv, .parquet, .jsonl, .json); the public layouts "
                            f"look like this: {_described()}.{hint}", code="layout")


def read_layout(path: Path, layout: str) -> pd.DataFrame:
    """Read ``path`` with the reader of ``layout`` (a :data:`LAYOUTS` name)."""
    return LAYOUTS[layout].read(path)
