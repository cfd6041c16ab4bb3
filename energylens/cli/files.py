"""Files in and out of the command line: tables read with their layout, tables written
atomically, and outputs that never replace a user's file by accident.

Rules for every output (checked before any reading or fitting):

- never an input of the same command (``fit data.csv -o data.csv``), nor a folder holding one;
- an existing file is replaced only when it is an energylens model file of the same kind
  (recognised by its format) or with ``--force``;
- a folder output (a report, a grouped model) is written into a folder that is empty, or
  that energylens wrote before (a report keeps a marker file, a grouped model its
  ``groups.json``), or, with ``--force``, any folder; never over a file;
- the folder that will hold an output takes a new file (one is created and removed there), so
  that a read-only place fails at once rather than after the work;
- two outputs of one command never share a path (``sweetspot -o ss.png --plot ss.png``);
- ``-`` names standard output for a table (``-o -``); a model file, a folder or a plot
  cannot go there and is refused;
- every write is atomic (a temporary file beside the destination, then one rename), and a
  write that fails names the output, not the temporary file.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..core.io import energylens_format

__all__ = ["BadInput", "LAYOUT_CHOICES", "by_columns", "check_by", "cli_spelling", "parse_pairs", "read_table",
           "read_candidates", "write_table", "write_bytes", "writing", "check_writable",
           "check_report_output", "Outputs", "REPORT_MARKER", "STDOUT"]

#: ``--layout`` values (``energylens.tables.LAYOUTS`` and ``auto``; kept here so that
#: ``--help`` does not import pandas; a test keeps the two in step).
LAYOUT_CHOICES = ("auto", "mlenergy-v2", "mlenergy-v3", "wilkins", "tokenpowerbench", "splitwise")
#: File a report folder holds, so that a later report may replace it: the name of
#: ``energylens.report.REPORT_MARKER`` (kept here so that ``--help`` does not import pandas; a
#: test keeps the two in step). Whether a folder may take a report is decided by
#: ``energylens.report.check_report_folder`` alone.
REPORT_MARKER = ".energylens-report"
#: The output name that means standard output (``-o -``), for tables.
STDOUT = "-"
#: What each kind of output is called in messages.
_KIND_NOUN = {"report": "report", "grouped": "grouped model",
              "energylens.model": "model file"}


class BadInput(Exception):
    """A command-line problem the user can fix (exit code 2)."""


def cli_spelling(option: str, value: object) -> str:
    """How the command line spells an option the library names: ``--duplicates mean``."""
    return f"--{option.replace('_', '-')} {value}"


def by_columns(items: Sequence[str] | str | None) -> list[str]:
    """Group columns from ``--by``, given with commas, spaces or both.

    >>> by_columns(["model,gpu"]), by_columns(["model", "gpu"]), by_columns(None)
    (['model', 'gpu'], ['model', 'gpu'], [])
    """
    if isinstance(items, str):
        items = [items]
    return [c.strip() for item in (items or []) for c in item.split(",") if c.strip()]


def check_by(by: Sequence[str], df, table: str) -> None:
    """Refuse ``--by`` columns the table does not have (the library would ignore them)."""
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise BadInput(f"--by names column(s) {missing} absent from '{table}'; its columns are "
                       f"{list(map(str, df.columns))}.")


def parse_pairs(items: Sequence[str] | None, flag: str, example: str) -> dict[str, str]:
    """``["a=b", ...]`` to ``{"a": "b"}``; a malformed item is a :class:`BadInput`."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadInput(f"{flag} expects NAME=VALUE (e.g. {example}); got {item!r}.")
        out[key.strip()] = value.strip()
    return out


def read_table(args, *, energy: bool = True):
    """The profiling table of ``args.table``, read with ``--layout``, ``--units``,
    ``--duplicates`` and ``--encoding``.

    With ``energy=False`` (a latency fit), a folder whose layout records no energy (a
    Splitwise folder) is read as measured configurations without energy. A folder that
    records no energy, given where energy is needed, is refused with the command that reads
    it."""
    from ..exceptions import SchemaError
    from ..tables import read_profiles

    units = parse_pairs(getattr(args, "units", None), "--units", "energy=kWh")
    layout = getattr(args, "layout", "auto")
    encoding = getattr(args, "encoding", None)
    if not energy and _layout_without_energy(args.table, layout):
        from ..tables import read_candidates as _read

        return _read(Path(args.table), layout=layout, units=units or None, encoding=encoding)
    try:
        return read_profiles(Path(args.table), layout=layout, units=units or None,
                             duplicates=getattr(args, "duplicates", "raise"), encoding=encoding)
    except SchemaError as exc:
        found = _layout_without_energy(args.table, layout)
        if found:
            raise BadInput(_no_energy_text(args.table, found, args.command)) from exc
        raise


def _layout_without_energy(table: str, layout: str) -> str | None:
    """The layout of ``table`` when it is a folder whose layout records no energy, else None."""
    from ..exceptions import SchemaError
    from ..tables import LAYOUTS, detect_layout

    path = Path(table)
    if layout == "auto":
        if not path.is_dir():
            return None
        try:
            layout = detect_layout(path)
        except (SchemaError, OSError):
            return None
    spec = LAYOUTS.get(layout)
    return layout if spec is not None and not spec.energy else None


def _no_energy_text(table: str, layout: str, command: str) -> str:
    """Why a folder of latency measurements is not a profiling table, and the commands that
    read it."""
    from ..tables import LAYOUTS

    return (f"'{table}' is a folder of {LAYOUTS[layout].title}: 'energylens {command}' needs "
            "energy measurements, which it does not hold. Fit a latency model with 'energylens "
            f"fit {table} --target tpot_s --by model,gpu -o tpot' (or --target ttft_s, "
            "latency_s), or pass the folder as the candidates of 'energylens predict' or "
            "'energylens select'.")


#: How the table readers open their messages, and how the command line names candidates.
_TABLE_NOUN = {"Cannot read profiling table ": "Cannot read the candidates ",
               "Invalid profiling table ": "Invalid candidates table "}


def read_candidates(path: str, layout: str = "auto", units: Sequence[str] | None = None,
                    encoding: str | None = None):
    """Candidate configurations (a table without measurements), read with ``--layout``,
    ``--units`` (``COLUMN=UNIT`` items) and ``--encoding``; its errors call it the
    candidates, not a profiling table."""
    from ..exceptions import SchemaError
    from ..tables import read_candidates as _read
    from ..tables.problems import explain

    pairs = parse_pairs(units, "--units", "energy=kWh")
    try:
        return _read(Path(path), layout=layout, units=pairs or None, encoding=encoding)
    except SchemaError as exc:
        text = explain(exc, cli_spelling)
        for old, new in _TABLE_NOUN.items():
            if text.startswith(old):
                raise BadInput(new + text[len(old):]) from exc
        raise


def _table_text(df, fmt: str) -> str:
    if fmt == "json":
        text = df.to_json(orient="records", indent=2)
    else:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        text = buf.getvalue()
    return text if text.endswith("\n") else text + "\n"


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an error while writing the output ``path`` into a :class:`BadInput` that names it
    (the error itself may name a temporary file beside it)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise BadInput(f"Cannot write '{path}': {reason}.") from exc


def write_table(df, out: str | os.PathLike | None, fmt: str = "csv") -> None:
    """A table to ``out`` (atomically) or, when ``out`` is None, to standard output."""
    from ..core.io import atomic_write

    text = _table_text(df, fmt)
    if out:
        with writing(out):
            atomic_write(out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def write_bytes(path: str | os.PathLike, data: bytes | str) -> None:
    """Bytes (or text) to ``path``, atomically."""
    from ..core.io import atomic_write

    with writing(path):
        atomic_write(path, data)


def check_writable(folder: Path, path: Path, flag: str) -> None:
    """Refuse an output in a folder that takes no new file (read-only, full, not ours): a
    temporary file is created in ``folder`` and removed at once."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".energylens-write-check.", dir=folder)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise BadInput(f"{flag} '{path}' cannot be written: the folder '{folder}' does not take "
                       f"new files ({reason}). Choose a folder you can write to.") from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _real(p: Path) -> Path:
    """The path with links followed as far as they go (never raises, even on a link loop)."""
    return Path(os.path.realpath(p))


def _same(a: Path, b: Path) -> bool:
    try:
        return _real(a) == _real(b) or os.path.samefile(a, b)
    except OSError:
        return False


class Outputs:
    """Checks output paths of one command against its inputs, against each other and against
    the files already there.

    Parameters
    ----------
    inputs : sequence of path
        Files and folders the command reads.
    force : bool
        ``--force``: replace existing files and write into any folder (never over an input).
    """

    def __init__(self, inputs: Sequence[str | os.PathLike | None], force: bool = False):
        self.inputs = [Path(p) for p in inputs if p]
        self.force = force
        self._taken: list[tuple[Path, str]] = []  # outputs already checked, with their flag

    def _not_an_input(self, path: Path, flag: str) -> None:
        for src in self.inputs:
            if _same(path, src):
                raise BadInput(f"{flag} '{path}' is an input of this command; writing there "
                               "would destroy it. Choose another output name.")
            if src.is_dir() and _real(path).is_relative_to(_real(src)):
                raise BadInput(f"{flag} '{path}' lies inside the input folder '{src}'; choose an "
                               "output outside it.")

    def _not_taken(self, path: Path, flag: str) -> None:
        """Refuse a second output at the path of an earlier one (or inside its folder)."""
        for other, other_flag in self._taken:
            if _real(path) == _real(other) or _real(path).is_relative_to(_real(other)):
                raise BadInput(f"{flag} '{path}' is also the output of {other_flag}; one would "
                               "overwrite the other. Give each output its own name.")
        self._taken.append((path, flag))

    def file(self, path: str | None, *, flag: str = "-o/--output", kind: str | None = None,
             stdout: bool | None = None) -> Path | None:
        """Check a file output; ``kind`` (``"energylens.model"``) names the energylens
        format that may be replaced without ``--force``.

        Returns None for no output, and for ``-`` (standard output) where ``stdout`` allows
        it (by default for a table, ``kind=None``); ``-`` elsewhere is refused."""
        if not path:
            return None
        if path == STDOUT:
            if stdout if stdout is not None else kind is None:
                return None
            what = f"the {_KIND_NOUN[kind]}" if kind in _KIND_NOUN else flag.split("/")[0]
            raise BadInput(f"{flag} -: '-' means standard output, which takes tables only; "
                           f"{what} needs a file name, e.g. {_example(flag, kind)}.")
        p = Path(path)
        self._not_an_input(p, flag)
        if p.is_dir():
            raise BadInput(f"{flag} '{p}' is a folder; give a file name.")
        if not p.parent.is_dir():
            raise BadInput(f"{flag} '{p}': the folder '{p.parent}' does not exist.")
        if p.exists() and not self.force and (kind is None or energylens_format(p) != kind):
            what = f"is not an energylens {kind.split('.')[-1]} file" if kind else "exists"
            raise BadInput(f"{flag} '{p}' {what}; energylens does not replace it. Pass --force "
                           "to replace it, or choose another name.")
        self._not_taken(p, flag)
        check_writable(p.parent, p, flag)
        return p

    def folder(self, path: str, *, flag: str = "-o/--output", kind: str = "report",
               writes: Sequence[str] = ()) -> Path:
        """Check a folder output: ``kind`` is ``"report"`` or ``"grouped"``; ``writes`` names
        the files it will hold (none may be an input)."""
        noun = _KIND_NOUN.get(kind, kind)
        if path == STDOUT:
            raise BadInput(f"{flag} -: '-' means standard output, which takes tables only; the "
                           f"{noun} is written to a folder: give its name, e.g. "
                           f"{_example(flag, kind)}.")
        p = Path(path)
        self._not_an_input(p, flag)
        if p.exists() and not p.is_dir():
            raise BadInput(f"{flag} '{p}' is a file; the {noun} is written to a folder. Choose "
                           "a folder name (it is created).")
        if not p.parent.is_dir() and not p.exists():
            raise BadInput(f"{flag} '{p}': the folder '{p.parent}' does not exist.")
        for src in self.inputs:
            if _real(src.parent) == _real(p) and (src.name in writes or (
                    kind == "grouped" and src.suffix == ".json")):
                raise BadInput(f"{flag} '{p}' would replace the input '{src}'; choose another "
                               "folder.")
        if kind == "report":
            check_report_output(p, flag, self.force)
        elif p.is_dir() and any(p.iterdir()) and not self.force and not self._ours(p):
            raise BadInput(f"{flag} '{p}' is a folder that energylens did not write (it holds "
                           f"other files); energylens does not write into it. Pass --force to "
                           "write into it anyway, or choose a new folder.")
        self._not_taken(p, flag)
        check_writable(p if p.is_dir() else p.parent, p, flag)
        return p

    @staticmethod
    def _ours(p: Path) -> bool:
        """Whether ``p`` holds a grouped model energylens saved (its ``groups.json``)."""
        return energylens_format(p / "groups.json") == "energylens.grouped"


def check_report_output(p: Path, flag: str, force: bool) -> None:
    """Refuse a report's folder by the rule the library's reports follow
    (:func:`energylens.report.check_report_folder`), in the command line's spelling: before
    the work, and again just before writing."""
    from ..report import check_report_folder

    try:
        check_report_folder(p, force=force)
    except FileExistsError as exc:
        text = str(exc).replace("Pass force=True", "Pass --force")
        raise BadInput(f"{flag} {text}") from exc


def _example(flag: str, kind: str | None) -> str:
    """An example of ``flag`` with a name fit for ``kind``."""
    name = {"report": "report", "grouped": "models", "energylens.model": "model.json"}.get(
        kind or "", "ss.png" if flag == "--plot" else "out.csv")
    return f"{flag.split('/')[0]} {name}"
