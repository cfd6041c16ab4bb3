"""The file a sweep appends its rows to: a CSV that a crash never corrupts and never empties.

Every row goes to the end of the file in one write of one complete line, flushed and
synced before the next configuration starts. A line cut short by a crash or a full disk is
found when the file is next opened: it is moved, as it was, to ``<name>.torn`` beside the
table and reported, so that the next row starts on a fresh line. A new file is created
with its header before anything is measured, so a path that cannot be written fails first.
An existing file that is not a sweep's file is refused before anything touches it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..core.io import atomic_write
from ..core.progress import logger
from ..exceptions import SchemaError
from .configs import record_key

__all__ = ["SweepFile"]


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (a regular file takes it in one call; a short write continues)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SweepFile:
    """A sweep's CSV file: resumed rows in, finished rows appended one complete line at a time.

    Parameters
    ----------
    path : path
        The CSV file.
    columns : list of str
        The columns this sweep writes; an existing file must have all of them.
    """

    def __init__(self, path: str | os.PathLike, columns: list[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.header: list[str] = []
        self.newline = "\n"
        self.records: list[tuple[int, list[str], str]] = []

    @property
    def torn_path(self) -> Path:
        """Where incomplete lines are set aside."""
        return self.path.with_name(self.path.name + ".torn")

    # ------------------------------------------------------------------ opening
    def open(self, resume: bool) -> set[str]:
        """Check the file (creating it with its header if needed); return the stored keys.

        An existing file is read and checked whole before anything is written: a file that
        is not a sweep's file is refused as it is, never truncated or overwritten. Only then
        is a torn last line of a sweep's file set aside.

        Raises
        ------
        FileExistsError
            The file exists and ``resume`` is False.
        SchemaError
            The file is not a sweep's file, lacks columns this sweep writes, or has rows
            that cannot be read (each named by line).
        """
        if self.path.is_dir():
            raise IsADirectoryError(f"'{self.path}' is a folder; out must name a CSV file.")
        if self.path.exists() and not resume:
            raise FileExistsError(f"'{self.path}' exists; pass resume=True to continue it or "
                                  "remove it.")
        if self.path.exists():
            data = self.path.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if whole:
                self._read(whole)  # raises, touching nothing, unless it is a sweep's file
                if len(whole) < len(data):
                    self._set_aside(data)
                return {key for _, _, key in self.records}
            if data and not self._torn_header(data):
                raise SchemaError(
                    f"'{self.path}' exists and is not a file written by profile_grid (one line "
                    "without the sweep's header); out must name a new file or an earlier "
                    "sweep's file. The file is left as it was.")
            if data:
                self._set_aside(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.header = list(self.columns)
        atomic_write(self.path, self._line(dict(zip(self.header, self.header))))
        return set()

    def _torn_header(self, data: bytes) -> bool:
        """Whether ``data`` (one incomplete line) is the start of this sweep's header: what
        a sweep leaves when it stops while creating the file."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator=self.newline).writerow(self.columns)
        return buf.getvalue().encode("utf-8").startswith(data.rstrip(b"\r"))

    def _set_aside(self, data: bytes) -> bytes:
        """Move the incomplete last line to the ``.torn`` file; return what is left."""
        cut = data.rfind(b"\n") + 1
        tail, line = data[cut:], data.count(b"\n", 0, cut) + 1
        fd = os.open(self.torn_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            _write_all(fd, tail + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.truncate(self.path, cut)
        logger.warning(
            "'%s' line %d is incomplete (the sweep writing it stopped mid-row): moved to '%s' "
            "and measured again; it began %r.", self.path, line, self.torn_path,
            tail[:80].decode("utf-8", "replace"))
        return data[:cut]

    def _read(self, data: bytes) -> None:
        where = f"'{self.path}'"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise SchemaError(f"{where} line {line} is not UTF-8 text; a sweep's file is written "
                              "in UTF-8. Use a new file.") from None
        first = text.split("\n", 1)[0]
        self.newline = "\r\n" if first.endswith("\r") else "\n"
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            self.header = next(reader)
        except csv.Error as exc:
            raise SchemaError(f"{where} line 1 cannot be read as CSV ({exc}); it is not a file "
                              "written by profile_grid. Use a new file.") from None
        self._check_header(where)
        bad, last = [], 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise SchemaError(f"{where} line {reader.line_num}: {exc}. Fix or remove the "
                                  "line, then run the sweep again.") from None
            start, last = last + 1, reader.line_num
            if not fields:
                continue
            if len(fields) != len(self.header):
                bad.append(f"line {start}: {len(fields)} fields, the header has {len(self.header)}")
                continue
            try:
                key = record_key(dict(zip(self.header, fields)))
            except ValueError as exc:
                bad.append(f"line {start}: {exc}")
                continue
            self.records.append((start, fields, key))
        if bad:
            shown = "\n".join(f"  - {b}" for b in bad[:10])
            raise SchemaError(f"{where}: {len(bad)} row(s) cannot be resumed from:\n{shown}\n"
                              "Fix or remove these lines (a row glued to a line torn by an "
                              "earlier crash holds too many fields), then run the sweep again.")

    def _check_header(self, where: str) -> None:
        dup = sorted({c for c in self.header if self.header.count(c) > 1})
        if dup:
            raise SchemaError(f"{where}: the header names {dup} more than once.")
        if "config_key" not in self.header:
            raise SchemaError(f"{where} exists and is not a file written by profile_grid (no "
                              "'config_key' column); out must name a new file or an earlier "
                              "sweep's file. The file is left as it was.")
        missing = [c for c in self.columns if c not in self.header]
        if missing:
            raise SchemaError(f"{where} has columns {self.header}; this sweep also writes "
                              f"{missing}. Use a new file.")

    # ------------------------------------------------------------------ appending
    def _line(self, row: Mapping[str, object]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator=self.newline).writerow(
            ["" if row.get(c) is None else row[c] for c in self.header])
        return buf.getvalue()

    def append(self, row: Mapping[str, object]) -> None:
        """Append ``row`` as one complete line in one write, then flush it to disk.

        A torn last line left by another writer is set aside first. If the write fails
        (a full disk, a file removed meanwhile), the file is cut back to its previous end
        and the error carries the row, so nothing is left half-written and the measured
        row is not lost.
        """
        line = self._line(row).encode("utf-8")
        try:
            self._append_line(line)
        except OSError as exc:
            text = line.decode("utf-8").rstrip()
            logger.error("Could not append to '%s' (%s); the measured row is: %s", self.path,
                         exc, text)
            raise OSError(exc.errno, f"Could not append the measured row to '{self.path}' "
                          f"({exc.strerror or exc}); the file is left as it was. The row: "
                          f"{text}") from exc

    def _append_line(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.close(fd)
                fd = -1
                self._set_aside(self.path.read_bytes())
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
                size = os.fstat(fd).st_size
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            if fd >= 0:
                os.close(fd)

    # ------------------------------------------------------------------ reading back
    def table(self, keys: set[str]) -> tuple[pd.DataFrame, list[int]]:
        """The file's rows whose key is in ``keys``, and their line numbers."""
        self.records = []
        data = self.path.read_bytes()
        self._read(data[: data.rfind(b"\n") + 1])  # a row another writer has half-written waits
        chosen = [(line, fields) for line, fields, key in self.records if key in keys]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.header)
        w.writerows(fields for _, fields in chosen)
        buf.seek(0)
        df = pd.read_csv(buf, keep_default_na=False, na_values=["", "nan", "NaN"])
        return df, [line for line, _ in chosen]
