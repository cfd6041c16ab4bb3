"""What a user sees: clean public namespaces (top level and ``energylens.plot``) and a test
command whose output ends in its summary, not in hundreds of expected-failure lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import energylens
import energylens.plot

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_namespace_holds_only_the_public_names():
    code = ("import energylens, energylens.tables, energylens.models\n"
            "print(sorted(n for n in vars(energylens) if not n.startswith('_') "
            "and n not in energylens.__all__))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert not {"Any", "TYPE_CHECKING", "importlib", "annotations"} & set(dir(energylens))
    assert set(dir(energylens)) == set(energylens.__all__)


def test_plot_namespace_holds_only_the_plots():
    public = {n for n in vars(energylens.plot) if not n.startswith("_")}
    assert public == set(energylens.plot.__all__)
    assert all(callable(getattr(energylens.plot, n)) for n in energylens.plot.__all__)


def test_pytest_reports_failures_errors_and_skips_only():
    """-r lists failures, errors and skips with reasons, not the expected failures."""
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib needs Python 3.11)
    addopts = re.search(r'^addopts = "([^"]*)"', text, flags=re.M).group(1)
    flags = next(a for a in addopts.split() if a.startswith("-r"))[2:]
    assert set(flags) <= set("fEs") and "x" not in flags and "a" not in flags
    test_extras = text.split("test = [", 1)[1].split("]", 1)[0]
    names = set(re.findall(r'^\s*"([A-Za-z0-9_.-]+)', test_extras, flags=re.M))
    assert {"nbconvert", "ipykernel", "nbclient"} <= names
