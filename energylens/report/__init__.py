"""The HTML report: fit, compare and choose on one profiling table.

The report is built in two steps: :func:`analyse` computes everything as plain data (an
:class:`Analysis` of DataFrames and dicts), :func:`render` turns it into one self-contained
HTML page (plots embedded as PNG, no external resources), which opens with a headline: the
recommended configuration per scenario with its predicted energy and interval, the model's
accuracy on held-out rows beside the best ensemble, the rule of thumb and the 2%-noise ceiling,
and what to measure next.
:func:`write_report` writes the page with the tables behind it as CSV, so that every number
can be checked, into a folder marked as an energylens report.

- :mod:`~energylens.report.fitting`: the model behind the headline and the parameter table;
- :mod:`~energylens.report.choices`: recommendations, what to measure next, the
  energy-latency front;
- :mod:`~energylens.report.comparison`: the comparison against baselines;
- :mod:`~energylens.report.lengths`: sweet spots;
- :mod:`~energylens.report.analysis`: :func:`analyse`;
- :mod:`~energylens.report.folder`: the report's folder, its marker, and which folders a
  report may be written into (:func:`check_report_folder`);
- :mod:`~energylens.report.html`, :mod:`~energylens.report.figures`,
  :mod:`~energylens.report.sections`: the page.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from .._version import __version__
from ..core.io import atomic_write
from ..core.progress import logger
from .analysis import Analysis, analyse
from .fitting import main_model, parameter_view
from .folder import REPORT_FILES, REPORT_MARKER, check_report_folder, marker_text, written_before
from .html import esc, page

__all__ = ["analyse", "render", "write_analysis", "write_report", "build_report", "Analysis",
           "main_model", "parameter_view", "written_before", "check_report_folder",
           "REPORT_FILES", "REPORT_MARKER"]

def render(a: Analysis, *, title: str = "energylens report") -> str:
    """The HTML page of an analysis.

    Examples
    --------
    >>> html = render(analyse(table, quick=True))  # doctest: +SKIP
    """
    from ..core.progress import progress
    from .sections import SECTIONS

    t0 = time.perf_counter()
    body = "".join(section(a) for section in progress(
        SECTIONS, desc="drawing the report", unit="section",
        enabled=a.settings.get("show_progress")))
    spent = sum(a.timings.values()) + time.perf_counter() - t0
    footer = (f'<p class="note">energylens {esc(__version__)}; {len(a.data)} rows; '
              f"{a.settings.get('seeds')} seeds in the comparison"
              + ("; quick settings" if a.settings.get("quick") else "")
              + f"; analysed and drawn in {spent:.0f} s. Every table is also written as CSV "
              "beside this file.</p>")
    sub = f"{len(a.data)} rows from <code>{esc(a.source)}</code>"
    return page(title, sub, body + footer)


def tables(a: Analysis) -> dict[str, pd.DataFrame]:
    """The CSV tables behind the report, by file stem."""
    from .sections import headline_numbers

    out: dict[str, pd.DataFrame] = {"fit_groups": a.fits}
    if isinstance(a.headline, pd.DataFrame) and len(a.headline):
        out["headline"] = headline_numbers(a.headline)
    if isinstance(a.next, pd.DataFrame) and len(a.next):
        out["next_measurements"] = a.next
    params = getattr(a.model, "params_", None)
    if isinstance(params, pd.DataFrame) and len(params):
        out["parameters"] = params.reset_index() if params.index.name else params
    if not isinstance(a.discovery, str):
        eq = a.discovery.equations_.copy()
        eq["sympy"] = eq["sympy"].astype(str)
        out["discovery"] = eq
    if not isinstance(a.comparison, str):
        out["comparison"], out["comparison_long"] = a.comparison.summary, a.comparison.long
    if isinstance(a.best, pd.DataFrame) and len(a.best):
        out["best_configurations"] = a.best
    if isinstance(a.front, dict):
        t = a.front["table"].copy()
        t["pareto"] = a.front["front"].reindex(t.index).fillna(False).to_numpy(dtype=bool)
        t["within_limit"] = t[a.front["x"]] <= a.front["limit"]
        t["chosen"] = t.index == a.front["chosen"]
        out["energy_latency"] = t
    if len(a.sweet_table):
        out["sweet_spots"] = a.sweet_table
    if a.warnings:
        out["warnings"] = pd.DataFrame(a.warnings, columns=["warning", "message", "group"])
    return out


def write_analysis(a: Analysis, out_dir: str | os.PathLike, *,
                   title: str = "energylens report", force: bool = False) -> Path:
    """Write ``index.html``, the CSV tables and the report marker into ``out_dir`` (created
    if needed; every file atomically); returns the HTML path.

    ``out_dir`` must be absent, empty or a folder an earlier report wrote (it holds
    :data:`REPORT_MARKER`); any other folder only with ``force=True``
    (:func:`check_report_folder`: otherwise :class:`FileExistsError` naming the folder and
    its files, raised before anything is written). Replacing an earlier report, the files
    it wrote that this one does not (a table it had and this one lacks, such as
    ``sweet_spots.csv`` of another table) are removed, so that every file in the folder
    describes this report; no other file is touched (:func:`written_before`).
    """
    out = check_report_folder(out_dir, force=force)
    out.mkdir(parents=True, exist_ok=True)
    logger.info(f"drawing the figures and writing {out}/")
    text = render(a, title=title)
    files = {f"{name}.csv": t for name, t in tables(a).items()}
    new = {*files, "index.html"}
    old = written_before(out)
    # The marker lists every file that may be in the folder until the old ones are gone, so
    # an interrupted run leaves nothing a later one would not remove.
    atomic_write(out / REPORT_MARKER, marker_text(old | new))
    for name, t in files.items():
        atomic_write(out / name, t.to_csv(index=False))
    path = atomic_write(out / "index.html", text)
    for name in sorted(old - new):
        (out / name).unlink(missing_ok=True)
        logger.info(f"removed {out / name}, written by the earlier report")
    atomic_write(out / REPORT_MARKER, marker_text(new))
    logger.info(f"wrote {path}")
    return path


def build_report(df: pd.DataFrame, *, title: str = "energylens report", source: str = "<table>",
                 **kwargs) -> tuple[str, dict[str, pd.DataFrame]]:
    """Run the analysis and return ``(html, tables)``; keyword arguments as :func:`analyse`."""
    a = analyse(df, source=source, **kwargs)
    return render(a, title=title), tables(a)


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, *, title: str = "energylens report",
                 source: str = "<table>", force: bool = False, **kwargs) -> Path:
    """Analyse ``df`` and write the report into ``out_dir``; returns the HTML path.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table (see :func:`energylens.read_profiles`).
    out_dir : path
        Folder to create or fill (``index.html``, the CSV tables, a marker file): absent,
        empty, or one an earlier report wrote (:func:`check_report_folder`).
    title : str
        Title of the report.
    source : str
        Where the table came from (shown in the report).
    force : bool
        Write into a folder energylens did not write, replacing the report's files there
        (never a file at ``out_dir``).
    **kwargs
        As :func:`analyse`: ``estimator``, ``seeds``, ``quick``, ``max_latency_s``,
        ``n_jobs``, ``show_progress``.

    Raises
    ------
    FileExistsError
        ``out_dir`` is a folder energylens did not write and ``force`` is false (checked
        before the analysis, and again before writing).
    NotADirectoryError
        ``out_dir`` is a file.

    Examples
    --------
    >>> import energylens  # doctest: +SKIP
    >>> write_report(energylens.read_profiles("data/demo_profiles.csv"), "report")  # doctest: +SKIP
    PosixPath('report/index.html')
    """
    check_report_folder(out_dir, force=force)
    return write_analysis(analyse(df, source=source, **kwargs), out_dir, title=title,
                          force=force)
