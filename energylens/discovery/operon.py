"""Deprecated location of :mod:`energylens.discovery.engines.operon` (kept so old imports work)."""

from .engines.operon import OPERON_SYMBOLS, Operon

__all__ = ["OPERON_SYMBOLS", "Operon"]
