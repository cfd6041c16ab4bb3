"""The folder a report is written into, and the rule that keeps a user's folder safe.

A report marks its folder with :data:`REPORT_MARKER`. A report is written into a folder
that is absent, empty, or marked (an earlier report's, which it may replace); any other
folder only when forced, and never over a file. :func:`check_report_folder` applies the
rule for :func:`energylens.report.write_report` and the ``energylens report`` command
alike.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> check_report_folder(d / "report") == d / "report"  # absent: created when written
True
>>> _ = (d / "notes.txt").write_text("mine")
>>> foreign_files(d)
['notes.txt']
>>> check_report_folder(d)
Traceback (most recent call last):
...
FileExistsError: '...' is a folder that energylens did not write: it holds 'notes.txt' ...
>>> check_report_folder(d, force=True) == d
True
"""

from __future__ import annotations

import os
from pathlib import Path

from .._version import __version__

__all__ = ["REPORT_MARKER", "REPORT_FILES", "written_before", "marker_text", "foreign_files",
           "check_report_folder"]

#: The file marking a folder as an energylens report (a later report may replace it). Its
#: first line names the version; each further line a file the report wrote.
REPORT_MARKER = ".energylens-report"
#: Every file a report writes.
REPORT_FILES = ("index.html", REPORT_MARKER, "headline.csv", "next_measurements.csv",
                "fit_groups.csv", "parameters.csv", "discovery.csv", "comparison.csv",
                "comparison_long.csv", "best_configurations.csv", "energy_latency.csv",
                "sweet_spots.csv", "warnings.csv")
#: How many of a folder's files an error names before it counts the rest.
_SHOWN = 5


def marker_text(names) -> str:
    """The content of :data:`REPORT_MARKER`: the version, then one file name a line."""
    return f"energylens report {__version__}\n" + "".join(f"{n}\n" for n in sorted(names))


def written_before(out_dir: str | os.PathLike) -> set[str]:
    """The files an earlier report wrote into ``out_dir``, which a new one may remove.

    Those its marker lists; for a marker that lists none (written before markers listed
    their files), the report's file names that are no newer than the marker (the report
    wrote them before its marker, so a file put there later is kept). Only names of
    :data:`REPORT_FILES` count; empty where ``out_dir`` holds no marker.
    """
    marker = Path(out_dir) / REPORT_MARKER
    if not marker.is_file():
        return set()
    try:
        lines = marker.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
        listed = {ln.strip() for ln in lines if ln.strip()}
        names = set(REPORT_FILES) - {REPORT_MARKER}
        if listed:
            return listed & names
        stamp = marker.stat().st_mtime
        return {n for n in names if (marker.parent / n).is_file()
                and (marker.parent / n).stat().st_mtime <= stamp}
    except OSError:
        return set()


def foreign_files(out_dir: str | os.PathLike) -> list[str]:
    """The entries of ``out_dir`` that keep a report out of it unless forced, sorted.

    None where ``out_dir`` is absent, empty, not a folder, or marked as a report's
    (:data:`REPORT_MARKER`); otherwise every entry it holds.
    """
    path = Path(out_dir)
    if not path.is_dir() or (path / REPORT_MARKER).is_file():
        return []
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries)


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def check_report_folder(out_dir: str | os.PathLike, *, force: bool = False) -> Path:
    """Check that a report may be written into the folder ``out_dir``; returns it as a
    :class:`~pathlib.Path`.

    Parameters
    ----------
    out_dir : path
        The report's folder: absent (it is created), empty, or one a report wrote before
        (it holds :data:`REPORT_MARKER`).
    force : bool
        Write into any other folder too (never over a file).

    Raises
    ------
    NotADirectoryError
        ``out_dir`` is a file.
    FileExistsError
        ``out_dir`` is a folder energylens did not write and ``force`` is false; the message
        names the folder and the files it holds.
    """
    path = Path(out_dir)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise NotADirectoryError(f"'{path}' is a file; a report is written to a folder. Give the "
                                 "path of a folder (it is created if absent).")
    others = [] if force else foreign_files(path)
    if others:
        raise FileExistsError(
            f"'{path}' is a folder that energylens did not write: it holds {_listing(others)} "
            f"and no {REPORT_MARKER} marker of an earlier report, so the report does not write "
            "into it. Pass force=True to write into it anyway, or choose a new folder.")
    return path
