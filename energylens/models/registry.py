"""The classes a model file may name: every closed form registers itself by class name.

Model files store a class name, never code; :func:`energylens.load_model` looks the name
up here.
"""

from __future__ import annotations

__all__ = ["register", "lookup", "known"]

_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    """Record ``cls`` under its name (called for every subclass of the model bases)."""
    _CLASSES[cls.__name__] = cls
    return cls


def _import_models() -> None:
    """Import every module of the package's lazy table, so that each model class has
    registered itself (a fresh process that only loads a file has imported none)."""
    import importlib

    from . import _LAZY

    for module in sorted(set(_LAZY.values())):
        if module.startswith(".") and not module.startswith(".."):
            importlib.import_module(module, __package__)


def lookup(name: str) -> type | None:
    """The class registered under ``name``, or None."""
    if name not in _CLASSES:
        _import_models()
    return _CLASSES.get(name)


def known() -> list[str]:
    """Names of the registered classes."""
    _import_models()
    return sorted(_CLASSES)
