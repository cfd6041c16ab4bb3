"""The documentation site builds with `mkdocs build --strict` (API reference from the docstrings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("read_profiles", "EnergyLensModel", "SweetSpotModel", "select_config", "discover"):
        assert name in api


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = 'python -m pip install -e ".[test]" && python -m pytest -n 2'
    assert test_cmd in readme and test_cmd in ci
    assert "energylens report data/demo_profiles.csv -o report" in readme


def test_readme_notebook_example_runs(tmp_path):
    """The README's notebook block runs as written (from a copy of the repository's data/),
    and leaves the model folder it says it saves, loadable by ``load_model``."""
    pytest.importorskip("matplotlib")
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    code = next(b for b in blocks if "import energylens" in b)
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    script = tmp_path / "example.py"
    script.write_text(code + "\nassert energylens.load_model('model').predict(df.head()).min() > 0\n")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-W", "ignore", str(script)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "model").exists()
