"""Structure-search engines, one module per strategy (the layout of pysindy's optimizers).

- :class:`~energylens.discovery.engines.terms.TermSearch` (``"terms"``): deterministic
  best-subset search over products of the features; numpy and scipy only.
- :class:`~energylens.discovery.engines.operon.Operon` (``"operon"``): genetic programming
  with pyoperon.
- :class:`~energylens.discovery.engines.pysr.PySR` (``"pysr"``): PySR, where Julia works.

Each is a scikit-learn-style object whose defaults live in its class
(:mod:`~energylens.discovery.engines.base`). :func:`resolve_engine` turns the names accepted
by :func:`~energylens.discovery.discover` (``"auto"``, ``"terms"``, ``"operon"``,
``"pysr"``) into engine objects.
"""

from __future__ import annotations

from ...core.options import HasMethods, StrOptions, check_options
from .base import Candidate, Engine, Front
from .operon import Operon
from .pysr import PySR
from .terms import TermSearch

__all__ = ["Candidate", "Engine", "Front", "TermSearch", "Operon", "PySR", "ENGINES",
           "ENGINE_CLASSES", "resolve_engine"]

#: Engine classes by name.
ENGINE_CLASSES: dict[str, type[Engine]] = {"terms": TermSearch, "operon": Operon, "pysr": PySR}
#: Names accepted where an engine is expected.
ENGINES = ("auto", *ENGINE_CLASSES)


def resolve_engine(engine: str | Engine) -> Engine:
    """The engine object for a name, or the engine given (any object with a ``search`` method
    of :class:`~energylens.discovery.engines.base.Engine`'s signature).

    ``"auto"`` takes PySR if ``import pysr`` works with a Julia (probed in a subprocess),
    else pyoperon if installed, else the term search.

    Examples
    --------
    >>> resolve_engine("terms")
    TermSearch()
    >>> resolve_engine(TermSearch(max_terms=3))
    TermSearch(max_terms=3)
    """
    check_options("resolve_engine", {"engine": [StrOptions(set(ENGINES)), HasMethods(["search"])]},
                  {"engine": engine})
    if not isinstance(engine, str):
        return engine
    if engine == "auto":
        for cls in (PySR, Operon):
            if cls.available()[0]:
                return cls()
        return TermSearch()
    return ENGINE_CLASSES[engine]()
