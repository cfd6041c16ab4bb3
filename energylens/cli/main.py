"""Running one command: logging, warnings, and exit codes that never end in a traceback for
bad input.

Exit codes: 0 success; 2 bad input (a table that breaks the schema, a model file that does
not load, data that cannot be fitted, an output that would replace a user's file, a bad
option); 1 an internal error, with its traceback (please report it).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from .files import BadInput, cli_spelling
from .messages import WarningSummary, cli_text, log, setup_logging
from .parser import build_parser, check_args

__all__ = ["main", "EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT", "COMMAND_MODULES"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2

#: Command -> module (of this package) holding ``cmd_<command>``.
COMMAND_MODULES = {
    "validate": "data", "simulate": "data", "grid": "data",
    "fit": "models", "predict": "models", "select": "models", "sweetspot": "models",
    "discover": "study", "compare": "study", "report": "study",
}


def command(name: str):
    """The function running command ``name``."""
    module = importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")
    return getattr(module, f"cmd_{name}")


def _message(exc: BaseException) -> str:
    """The error's message, with the library options it names in the command line's spelling."""
    from ..exceptions import SchemaError

    if isinstance(exc, SchemaError):
        from ..tables.problems import explain

        return cli_text(explain(exc, cli_spelling))
    if isinstance(exc, KeyError) and exc.args:
        return cli_text(str(exc.args[0]))
    return cli_text(str(exc)) or type(exc).__name__


def _bad_input_types() -> tuple[type, ...]:
    from ..exceptions import EnergyLensError

    # ValueError covers the library's argument checks (scikit-learn's InvalidParameterError
    # among them); OSError a path that cannot be read or written.
    return (EnergyLensError, BadInput, ValueError, OSError, RecursionError)


def _run(args) -> int:
    check_args(args)
    summary = WarningSummary()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = command(args.command)(args, summary)
        finally:
            summary.add_records(caught)
            summary.emit()
    return code


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's final flush of output the
    reader no longer wants does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (captured, embedded)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Examples
    --------
    >>> main(["--version"])  # doctest: +ELLIPSIS
    energylens ...
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    teardown = setup_logging(args.verbose, args.quiet)
    try:
        return _run(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERNAL
    except BrokenPipeError:  # the reader stopped early (``energylens ... | head``): not an error
        _silence_stdout()
        return EXIT_OK
    except _bad_input_types() as exc:
        log.debug("".join(traceback.format_exception(exc)))
        log.error(_message(exc))
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - the last line of defence, with the traceback
        log.error("internal error (please report it with the traceback below):\n"
                  + traceback.format_exc().rstrip())
        return EXIT_INTERNAL
    finally:
        teardown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
