"""Every example in every docstring of the package runs and gives what it shows.

Examples that need what a test machine lacks (a GPU, Julia, a long run) are marked
``# doctest: +SKIP`` in place, so that they still read as documentation.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import energylens

MODULES = sorted(m.name for m in pkgutil.walk_packages(energylens.__path__, "energylens.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(energylens.datasets.demo_table_path().parent.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                 verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
