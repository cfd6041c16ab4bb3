"""What the command line says on standard error: one logging setup, and warnings once per kind.

The library speaks through the ``energylens`` logger (:data:`energylens.core.progress.logger`)
and Python warnings. The command line attaches one handler to that logger for the length of
a command (``-v`` for debug messages, ``--quiet`` for warnings and errors only), records
every warning a command raises and reports each kind once, with the groups it concerns,
instead of a line per warning with a file name and a line number.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

__all__ = ["setup_logging", "log", "WarningSummary", "cli_text"]

log = logging.getLogger("energylens")


class _StderrHandler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (so a redirected stderr is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        if record.levelno >= logging.WARNING:
            return f"warning: {text}"
        return text


def setup_logging(verbosity: int = 0, quiet: bool = False):
    """Attach a standard-error handler to the ``energylens`` logger; returns a function that
    removes it (and restores the logger's level)."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity > 0 else logging.INFO)
    old = log.level
    log.setLevel(level)
    log.addHandler(handler)

    def teardown() -> None:
        log.removeHandler(handler)
        log.setLevel(old)

    return teardown


#: Library options the command line spells as flags, as (pattern, replacement):
#: ``duplicates='keep'`` -> ``--duplicates keep``, ``units={'energy_j': 'kWh'}`` ->
#: ``--units energy_j=kWh``, ``latency_model={'tpot_s': model}`` -> ``--latency-model tpot_s=FILE``.
_CLI_OPTIONS = (
    (re.compile(r"\b(duplicates|encoding|layout)='([^']*)'"), r"--\1 \2"),
    (re.compile(r"\bunits=\{'([^']*)': '([^']*)'\}"), r"--units \1=\2"),
    (re.compile(r"\bunits=(?![{'\w])"), "--units"),
    (re.compile(r"\blatency_model=\{'(\w+)': \w+\}"), r"--latency-model \1=FILE"),
    (re.compile(r"\bn_train=\[([\d, ]+)\]"), lambda m: "--n-train " + m[1].replace(",", "")),
    # derive_model's advice to refit per group: discover --derive --per-group does it
    (re.compile(r"GroupedModel\(model, by=\[[^\]]*\]\)"), "--per-group (with --derive)"),
    # a closed form's advice to fit per setting: fit --by does it
    (re.compile(r"\(GroupedModel\(by=\[\.\.\., '(\w+)'\]\)\)"), r"(--by ...,\1)"),
)
#: The catalogue's advice to register a GPU or model from Python; the command line cannot,
#: so it says where the catalogue is listed instead.
_CATALOGUE_ADVICE = (
    re.compile(r"\s*Add it with energylens\.core\.catalogue\.register_\w+\(.*?"
               r"see docs/catalogue\.md\.", re.S),
    re.compile(r"[;,]?\s*[Aa]dd (?:it|them) with energylens\.core\.catalogue\.register_\w+"
               r"\(pd\.DataFrame\(\{.*?\}\)\)\.?", re.S),
)
_CATALOGUE_CLI = (" The command line knows the GPUs and models of energylens's catalogue "
                  "(docs/catalogue.md lists them and says how to add one from Python).")


def cli_text(message: str) -> str:
    """A library message with the options it names in the command line's spelling.

    >>> cli_text("invalid units=: no column 'foo'")
    "invalid --units: no column 'foo'"
    >>> cli_text("Pass duplicates='mean' or declare units={'energy_j': 'kWh'}.")
    'Pass --duplicates mean or declare --units energy_j=kWh.'
    >>> cli_text("Unknown model 'x'. Add it with energylens.core.catalogue.register_models("
    ...          "pd.DataFrame({'name': ['x'], ...})) (columns ...); see docs/catalogue.md.")
    "Unknown model 'x'. The command line knows the GPUs and models of energylens's catalogue \
(docs/catalogue.md lists them and says how to add one from Python)."
    """
    for pattern, replacement in _CLI_OPTIONS:
        message = pattern.sub(replacement, message)
    cut = message
    for pattern in _CATALOGUE_ADVICE:
        cut = pattern.sub("", cut)
    if cut != message:
        message = cut.rstrip() + ("" if cut.rstrip().endswith(".") else ".") + _CATALOGUE_CLI
    return message


def _category(name_or_type) -> str:
    return name_or_type if isinstance(name_or_type, str) else name_or_type.__name__


class WarningSummary:
    """Warnings of one command, reported once per kind with the groups they concern.

    Examples
    --------
    >>> s = WarningSummary()
    >>> s.add("PoorFitWarning", "EnergyLensModel: in-sample MAPE 31%", group="a / H100")
    >>> s.add("PoorFitWarning", "EnergyLensModel: in-sample MAPE 45%", group="b / H100")
    >>> print(s.lines()[0])
    PoorFitWarning in 2 groups (a / H100, b / H100); first: EnergyLensModel: in-sample MAPE 31%
    """

    def __init__(self) -> None:
        self._kinds: dict[str, dict] = {}

    def add(self, category, message: str, group: str | None = None) -> None:
        kind = self._kinds.setdefault(_category(category), {"messages": [], "groups": []})
        message = cli_text(str(message).strip())
        if message and message not in kind["messages"]:
            kind["messages"].append(message)
        if group is not None and group not in kind["groups"]:
            kind["groups"].append(group)

    def add_records(self, records: Iterable, group: str | None = None) -> None:
        """Add :class:`warnings.WarningMessage` records."""
        for w in records:
            self.add(w.category, str(w.message), group)

    def add_group_warnings(self, model) -> None:
        """Add the warnings a :class:`~energylens.GroupedModel` recorded per group
        (:func:`~energylens.models.grouped.group_warnings`)."""
        from ..models.grouped import group_warnings

        for category, message, group in group_warnings(model):
            self.add(category, message, group)

    def __len__(self) -> int:
        return len(self._kinds)

    def lines(self, max_groups: int = 8) -> list[str]:
        out = []
        for category, kind in self._kinds.items():
            groups = kind["groups"]
            where = ""
            if groups:
                shown = ", ".join(groups[:max_groups]) + (" ..." if len(groups) > max_groups else "")
                where = f" in {len(groups)} group{'s' * (len(groups) > 1)} ({shown})"
            first = kind["messages"][0] if kind["messages"] else ""
            first = first if len(first) <= 400 else first[:397] + "..."
            many = len(kind["messages"]) > 1
            if many and not groups:
                where = f" ({len(kind['messages'])} messages)"
            sep = "; first: " if many else ": "
            out.append(f"{category}{where}{sep}{first}" if first else f"{category}{where}")
        return out

    def emit(self) -> None:
        """Log each kind once, as a warning."""
        for line in self.lines():
            log.warning(line)
