"""The ``energylens`` command line.

Subcommands: ``validate``, ``simulate``, ``grid``, ``discover``, ``fit``, ``predict``,
``select``, ``sweetspot``, ``compare`` and ``report``; every one has ``--help`` with an
example on each option. Tables go to standard output (or to ``-o FILE``; ``-o -`` is standard
output too) as CSV or JSON; messages, warnings (once per kind) and progress go to standard
error.

- :mod:`~energylens.cli.parser`: the arguments (imports nothing heavy: ``--help`` is fast);
- :mod:`~energylens.cli.main`: logging, warnings and exit codes;
- :mod:`~energylens.cli.files`: reading tables and layouts, writing outputs safely;
- :mod:`~energylens.cli.messages`: the standard-error handler and the warning summary;
- :mod:`~energylens.cli.data`, :mod:`~energylens.cli.models`, :mod:`~energylens.cli.study`:
  the commands.

Exit codes: 0 success; 2 bad input (the :class:`~energylens.SchemaError` message, or a bad
argument); 1 internal error.
"""

from .main import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, main
from .parser import COMMANDS, build_parser

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT"]
