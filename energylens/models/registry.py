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


def lookup(name: str) -> type | None:
    """The class registered under ``name``, or None."""
    return _CLASSES.get(name)


def known() -> list[str]:
    """Names of the registered classes."""
    return sorted(_CLASSES)
