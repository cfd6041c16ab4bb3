"""Reading a profiling table, or candidate configurations, from any source.

A source is a DataFrame, a table file (CSV/TSV, parquet, JSON lines, JSON; gzipped or
not), or a folder in one of the public measurement layouts
(:data:`~energylens.tables.readers.LAYOUTS`). Files are parsed strictly
(:mod:`~energylens.tables.parse`), headers mapped to canonical names
(:mod:`~energylens.tables.headers`) and the table validated
(:mod:`~energylens.tables.validate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from ..core.options import check_options
from .headers import canonical_frame
from .parse import check_path, read_table_file
from .problems import file_error
from .readers.layouts import LAYOUTS, detect_layout
from .validate import DUPLICATES, validate

__all__ = ["read_profiles", "read_candidates"]

LayoutName = Literal["auto", "table", "mlenergy-v2", "mlenergy-v3", "wilkins",
                     "tokenpowerbench", "splitwise"]


def _constraints() -> dict[str, list]:
    return {"layout": [{"auto", "table", *LAYOUTS}],
            "duplicates": [set(DUPLICATES)],
            "encoding": [str, None], "columns": [Mapping, None], "units": [Mapping, None]}


def _source(source, layout: str, columns, units, encoding, caller: str, energy: bool):
    """The raw table and its name: ``(frame, where, lines, from_layout)``."""
    if isinstance(source, pd.DataFrame):
        if layout not in ("auto", "table"):
            raise ValueError(f"{caller}: layout={layout!r} applies to a folder, not a "
                             "DataFrame.")
        return source, "<DataFrame>", None, False
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"{caller} expects a path or a DataFrame, got {type(source).__name__}.")
    path = Path(source).expanduser()
    where = f"'{path}'"
    if layout == "auto":
        check_path(path, where)
        layout = detect_layout(path)
    if layout == "table":
        raw, lines = read_table_file(path, encoding=encoding)
        return raw, where, lines, False
    if columns or units:
        raise ValueError(f"{caller}: columns= and units= apply to table files, not to the "
                         f"{layout} layout (its reader knows its own columns).")
    spec = LAYOUTS[layout]
    if energy and not spec.energy:
        raise file_error(where, f"is a {spec.title} folder: it records latency, not energy, "
                                "so it is not a profiling table", code="layout",
                         detail="Read it with read_splitwise (or read_candidates) to fit "
                                "latency models.")
    return spec.read(path), where, None, True


def read_profiles(
    source: str | os.PathLike | pd.DataFrame,
    *,
    layout: LayoutName = "auto",
    columns: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    duplicates: Literal["raise", "mean", "keep"] = "raise",
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read a profiling table into the canonical, validated form.

    Parameters
    ----------
    source : path or DataFrame
        A table file (``.csv``, ``.tsv``, ``.txt``, ``.parquet``, ``.jsonl``, ``.json``,
        each optionally gzipped), a folder in a public measurement layout, or a DataFrame
        (never modified in place).
    layout : {"auto", "table", "mlenergy-v2", "mlenergy-v3", "wilkins", "tokenpowerbench", \
"splitwise"}
        How to read ``source``: ``"auto"`` reads a file as a table and detects the layout
        of a folder (:func:`~energylens.tables.detect_layout`); a layout name reads a
        folder with that layout's reader (``"splitwise"`` records no energy and is refused
        here: use :func:`read_candidates` or ``read_splitwise``).
    columns : mapping, optional
        Explicit header -> canonical name mapping for headers the aliases do not know,
        e.g. ``{"E_total": "energy_j"}``.
    units : mapping, optional
        Unit of a column in the source, keyed by header or canonical name, e.g.
        ``{"energy_j": "kWh", "latency": "ms"}``; overrides a unit read from a suffix.
    duplicates : {"raise", "mean", "keep"}
        Rows with the same configuration and different energies: raise (default), average
        them, or keep them as repeated measurements. Rows that repeat a configuration with
        the same energy are merged with a warning saying how many.
    encoding : str, optional
        Text encoding of a text file; default UTF-8 (a byte-order mark is honoured).

    Returns
    -------
    DataFrame
        Canonical columns in schema order, then any extra columns of the source (kept
        under their own names).

    Notes
    -----
    Headers are resolved case-insensitively through
    :data:`~energylens.tables.columns.ALIASES` and unit suffixes (``Energy (Wh)``,
    ``Latency (ms)``, ``energy_per_req_mj``); two headers that resolve to one canonical
    column are an error, never a silent choice. A batch-cap header such as ``max_num_seqs``
    sets ``batch_kind="cap"``; ``running_batch`` is kept beside ``batch_size`` and may not
    exceed a cap. Text files are checked before parsing: gzip content and byte-order marks
    are recognised whatever the name, the delimiter is read from the header, ``#`` lines
    before the header are skipped, and a row with more or fewer fields than the header is
    an error naming its line. A table read from a layout is returned as its reader returns
    it: ``read_profiles(reader_output)`` gives the same table back.

    Raises
    ------
    SchemaError
        With every problem at once: file, column, up to five rows, rule, bad value and the
        rows' lines in the file. ``SchemaError.problems`` holds the same as dicts (see
        :mod:`energylens.tables.problems`).

    Examples
    --------
    >>> import pandas as pd, energylens
    >>> raw = pd.DataFrame({"model": ["m"], "gpu": ["H100"], "TP": [2], "batch": [8],
    ...                     "prompt_tokens": [512], "output_tokens": [128],
    ...                     "energy_kwh": [1e-5]})
    >>> float(energylens.read_profiles(raw)["energy_j"].iloc[0])
    36.0
    """
    check_options("read_profiles", _constraints(),
                  {"layout": layout, "duplicates": duplicates, "encoding": encoding,
                   "columns": columns, "units": units})
    raw, where, lines, from_layout = _source(source, layout, columns, units, encoding,
                                             "read_profiles", energy=True)
    if from_layout:
        return raw
    df = canonical_frame(raw, where, columns, units)
    return validate(df, where=where, duplicates=duplicates, line_offset=lines)


def read_candidates(
    source: str | os.PathLike | pd.DataFrame,
    *,
    layout: LayoutName = "auto",
    columns: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read candidate configurations (a table without measurements) into canonical form.

    Headers, aliases, unit suffixes, ``columns=``/``units=``, layouts and file checks work
    as in :func:`read_profiles`, and every column present is checked against the schema;
    only ``tp``, ``batch_size``, ``input_tokens`` and ``output_tokens`` are required
    (``pp`` and ``dp`` default to 1). Energy columns, when present, are checked but not
    required, and repeated configurations are kept. A Splitwise folder reads as latency
    measurements of candidate configurations.

    Raises
    ------
    SchemaError
        With every problem at once: file, column, up to five rows, rule and bad value.

    Examples
    --------
    >>> import pandas as pd, energylens
    >>> raw = pd.DataFrame({"TP": [1, 2], "max_num_seqs": [64, 64],
    ...                     "prompt_tokens": [512, 512], "output_tokens": [128, 128]})
    >>> c = energylens.read_candidates(raw)
    >>> c[["tp", "pp", "batch_size", "batch_kind", "n_gpus"]].values.tolist()
    [[1, 1, 64.0, 'cap', 1], [2, 1, 64.0, 'cap', 2]]
    """
    check_options("read_candidates", _constraints(),
                  {"layout": layout, "encoding": encoding, "columns": columns, "units": units})
    raw, where, lines, from_layout = _source(source, layout, columns, units, encoding,
                                             "read_candidates", energy=False)
    df = raw if from_layout else canonical_frame(raw, where, columns, units)
    return validate(df, where=where, duplicates="keep", line_offset=lines, measurements=False)
