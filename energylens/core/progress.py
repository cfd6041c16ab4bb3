"""Progress and messages: one mechanism for the whole library.

Long loops (bootstrap refits, many groups, seeds of a benchmark) are wrapped in
:func:`progress`, a :mod:`tqdm` bar on standard error that shows the step, the count and an
estimated time left, and stays silent when standard error is not a terminal (CI, logs,
notebooks executed headless) or when ``enabled=False``. Everything else the library has to
say goes through the ``energylens`` :mod:`logging` logger (:data:`logger`); the command
line attaches a handler to it, a library user decides for themselves.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["logger", "progress"]

#: The library's logger; it has no handler of its own (the command line adds one).
logger = logging.getLogger("energylens")
logger.addHandler(logging.NullHandler())

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None,
             enabled: bool | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar on standard error.

    Parameters
    ----------
    iterable : iterable
        What to loop over.
    desc : str
        What the loop does, shown before the bar.
    total : int, optional
        Number of items (default: ``len(iterable)`` where it has one).
    enabled : bool, optional
        True forces the bar, False hides it; None (default) shows it only when standard
        error is a terminal.
    unit : str
        Name of one item (``"fit"``, ``"seed"``).

    Examples
    --------
    >>> sum(progress(range(3), desc="adding", enabled=False))
    3
    """
    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr,
                    dynamic_ncols=True, leave=False)
