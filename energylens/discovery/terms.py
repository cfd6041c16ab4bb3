"""Deprecated location of :mod:`energylens.discovery.engines.terms` and
:mod:`energylens.discovery.engines.linear` (kept so old imports work)."""

from .engines.linear import additive_terms, criterion_value, refit_additive
from .engines.terms import (
           MAX_SUBSETS,
           Term,
           TermSearch,
           build_library,
           search_terms,
           terms_expression,
)

__all__ = ["Term", "TermSearch", "build_library", "search_terms", "terms_expression", "additive_terms",
           "refit_additive", "criterion_value", "MAX_SUBSETS"]
