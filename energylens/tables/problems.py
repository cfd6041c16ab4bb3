"""Collecting every problem of a table, and phrasing them as one :class:`SchemaError`.

A problem is a dict, kept in ``SchemaError.problems`` so that a caller can act on it:

``code``
    What kind of problem (``"missing_column"``, ``"bound"``, ``"ragged_row"``,
    ``"duplicate_conflict"``, ``"encoding"`` ...); stable, for programs.
``source``
    The table (a quoted path or ``<DataFrame>``).
``column``, ``rule``, ``detail``
    The column ("" for file-level problems), the rule broken, and what to do.
``rows``, ``values``, ``count``, ``lines``
    Up to five offending rows (plain Python values), their values, how many rows offend
    in all, and the rows' lines in the file where known.
``advice``
    Options that would resolve it, as ``{"option", "value", "effect"}`` dicts, e.g.
    ``{"option": "duplicates", "value": "mean", "effect": "to average repeats"}``.

The message names options in Python's spelling (``duplicates='mean'``); :func:`explain`
phrases the same error with another spelling, e.g. the command line's
``--duplicates mean``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..exceptions import SchemaError
from .values import plain, show

__all__ = ["Problems", "explain", "python_spelling", "file_error", "problem", "render"]

#: How an option is spelled in advice: (option, value) -> text.
Spelling = Callable[[str, object], str]


def python_spelling(option: str, value: object) -> str:
    """``duplicates='mean'``: the keyword argument of the Python API."""
    return f"{option}={value!r}"


def _advice_text(advice: Sequence[dict], spell: Spelling) -> str:
    if not advice:
        return ""
    parts = [f"{spell(a['option'], a['value'])} {a['effect']}".strip() for a in advice]
    return "Pass " + ", or ".join(parts) + "."


def _problem_text(p: dict, spell: Spelling) -> str:
    text = f"column '{p['column']}': {p['rule']}" if p["column"] else p["rule"]
    if p["count"]:
        shown = ", ".join(
            f"row {r} (value {show(v)})" if p["values"] else f"row {r}"
            for r, v in zip(p["rows"], p["values"] or [None] * len(p["rows"]))
        )
        more = f" and {p['count'] - len(p['rows'])} more" if p["count"] > len(p["rows"]) else ""
        text += f"; {p['count']} offending row{'s' * (p['count'] > 1)}: {shown}{more}"
        if p.get("lines"):
            many = "s" * (len(p["lines"]) > 1)
            text += f" (file line{many} {', '.join(map(str, p['lines']))})"
    for extra in (p["detail"], _advice_text(p.get("advice", ()), spell)):
        if extra:
            text += ("" if text.endswith(".") else ".") + f" {extra}"
    return text


def render(problems: Sequence[dict], spell: Spelling = python_spelling) -> str:
    """The message of a list of problems of one table."""
    where = problems[0]["source"]
    if all(p["code"].startswith("file") for p in problems) and len(problems) == 1:
        return f"Cannot read profiling table {where}: {_problem_text(problems[0], spell)}"
    n = len(problems)
    lines = [f"Invalid profiling table {where}: {n} problem{'s' * (n > 1)}."]
    lines += [f"  - {_problem_text(p, spell)}" for p in problems]
    return "\n".join(lines)


def explain(error: SchemaError, spell: Spelling = python_spelling) -> str:
    """The message of ``error`` with options in another spelling.

    Parameters
    ----------
    error : SchemaError
        An error raised by the table readers.
    spell : callable
        ``(option, value) -> text``; the default writes ``duplicates='mean'``.

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens.tables import read_profiles
    >>> df = pd.DataFrame({"model": ["m", "m"], "gpu": ["g", "g"], "tp": [1, 1],
    ...                    "batch_size": [8, 8], "input_tokens": [64, 64],
    ...                    "output_tokens": [32, 32], "energy_j": [10.0, 12.0]})
    >>> try:
    ...     read_profiles(df)
    ... except SchemaError as err:
    ...     print(explain(err, lambda o, v: f"--{o} {v}").split("Pass ")[-1])
    --duplicates mean to average repeats, or --duplicates keep to keep every row.
    """
    if not error.problems or "source" not in error.problems[0]:
        return str(error)
    return render(error.problems, spell)


def problem(where: str, rule: str, *, code: str, column: str = "", detail: str = "",
            advice: Sequence[dict] = (), lines: Sequence[int] = ()) -> dict:
    """One problem without offending rows (see the module docstring for the keys)."""
    return {"code": code, "source": where, "column": column, "rule": rule, "rows": [],
            "values": [], "count": 0, "positions": [], "lines": list(lines), "detail": detail,
            "advice": list(advice)}


def file_error(where: str, rule: str, *, code: str = "file", column: str = "",
               detail: str = "", advice: Sequence[dict] = (),
               lines: Sequence[int] = ()) -> SchemaError:
    """A :class:`SchemaError` holding one problem without offending rows."""
    p = problem(where, rule, code=code, column=column, detail=detail, advice=advice,
                lines=lines)
    return SchemaError(render([p]), problems=[p])


class Problems:
    """Collects every problem of one table before one :class:`SchemaError` is raised.

    Parameters
    ----------
    where : str
        The table, as named in messages.
    lines : sequence of int, callable or None
        Each row position's line in the source file; or a function that returns those
        lines for a list of positions (None where it cannot tell), called only when an
        error is raised; or None.
    index : Index, optional
        Row labels used in messages (default: positions).
    """

    def __init__(self, where: str, lines=None, index: pd.Index | None = None):
        self.where = where
        self.lines = lines
        self.index = index
        self.items: list[dict] = []

    def add(self, column: str, rule: str, mask: np.ndarray | None = None,
            values: pd.Series | np.ndarray | None = None, detail: str = "", *,
            code: str = "value", advice: Sequence[dict] = ()) -> None:
        """Record a problem; with ``mask``, only if some row offends."""
        rows: list = []
        bad: list = []
        pos: list[int] = []
        count = 0
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            count = int(mask.sum())
            if count == 0:
                return
            pos = np.flatnonzero(mask)[:5].tolist()
            rows = [plain(self.index[p]) for p in pos] if self.index is not None else pos
            if values is not None:
                get = values.iloc.__getitem__ if isinstance(values, pd.Series) else values.__getitem__
                bad = [plain(get(p)) for p in pos]
        self.items.append({"code": code, "source": self.where, "column": column, "rule": rule,
                           "rows": rows, "values": bad, "count": count, "positions": pos,
                           "lines": [], "detail": detail, "advice": list(advice)})

    def _fill_lines(self) -> None:
        wanted = sorted({q for p in self.items for q in p["positions"]})
        if not wanted or self.lines is None:
            return
        if callable(self.lines):
            found = self.lines(wanted)
            if found is None:
                return
            where = dict(zip(wanted, found))
        else:
            where = {q: int(self.lines[q]) for q in wanted}
        for p in self.items:
            p["lines"] = [where[q] for q in p["positions"]]

    def raise_if_any(self) -> None:
        """Raise one :class:`SchemaError` listing every problem recorded so far."""
        if not self.items:
            return
        self._fill_lines()
        raise SchemaError(render(self.items), problems=self.items)
