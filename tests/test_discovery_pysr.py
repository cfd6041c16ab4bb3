"""PySR adapter tests that need no Julia: recorded hall-of-fame files and a stub module."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy

import energylens.discovery.engines.pysr as P
from energylens.core.expressions import julia_floats, parse_pysr_equation
from energylens.discovery import PySR, discover
from energylens.exceptions import BackendUnavailableError

DATA = Path(__file__).parent / "data" / "pysr"
t_m1, q, inv_B, si, so, B = sympy.symbols("t_m1 q inv_B si so B")


def test_julia_floats():
    assert julia_floats("1.5f0") == "1.5e0"
    assert julia_floats("1f-5 + 2.0e-3 + x1f0") == "1e-5 + 2.0e-3 + x1f0"
    assert float(parse_pysr_equation("1.5f0", [])) == 1.5
    assert float(parse_pysr_equation("2.5f-3", [])) == pytest.approx(2.5e-3)


def test_operator_names():
    e = parse_pysr_equation("plus(square(x0), cube(x1)) - mult(inv(x0), neg(x1)) + div(x0, x1) "
                            "+ sub(x0, 1) + abs(x1) + exp(x0) + log(x1) + sqrt(x0) + x0 ^ 2", ["a", "b"])
    a, b = sympy.symbols("a b")
    expected = a**2 + b**3 + b / a + a / b + a - 1 + sympy.Abs(b) + sympy.exp(a) + sympy.log(b) + sympy.sqrt(a) + a**2
    assert sympy.simplify(e - expected) == 0
    with pytest.raises(ValueError, match="unknown function"):
        parse_pysr_equation("gamma(x0)", ["a"])
    with pytest.raises(ValueError):
        parse_pysr_equation("x0.__class__", ["a"])


def test_read_hall_of_fame_file():
    table = P.read_hall_of_fame(DATA / "hall_of_fame.csv", ["t_m1", "q", "inv_B", "si", "so"])
    assert list(table.columns) == ["complexity", "loss", "equation", "sympy"]
    assert table["complexity"].tolist() == [1, 3, 5, 7, 9, 11]
    assert table["loss"].iloc[0] == pytest.approx(0.2831)
    assert table["loss"].iloc[4] == pytest.approx(1.004e-4)
    e = table["sympy"].iloc[4]
    expected = 9.966e-3 * si + 1.998e-2 * so + 3.995e-1 * q + 1.514e-3 * si * t_m1
    assert sympy.simplify(e - expected) == 0
    e5 = table["sympy"].iloc[5]
    assert float(e5.coeff(inv_B**3)) == pytest.approx(0.2)


def test_read_named_equations_and_errors(tmp_path):
    table = P.read_hall_of_fame(DATA / "equations_named.csv", ["si", "so"])
    assert sympy.simplify(table["sympy"].iloc[2] - (1e-5 * si**2 + sympy.log(so) - 1.5)) == 0
    assert sympy.simplify(table["sympy"].iloc[1] - (2 * si + sympy.sqrt(so))) == 0
    bad = tmp_path / "hof.csv"
    bad.write_text("Complexity,Loss\n1,0.5\n")
    with pytest.raises(ValueError, match="Equation"):
        P.read_hall_of_fame(bad, ["si"])
    bad.write_text('Complexity,Loss,Equation\n1,0.5,"__import__(\'os\')"\n')
    with pytest.raises(ValueError, match="row 0"):
        P.read_hall_of_fame(bad, ["si"])
    with pytest.raises(FileNotFoundError):
        P.read_hall_of_fame(tmp_path / "none.csv", ["si"])


def _stub_module(record: dict) -> types.ModuleType:
    mod = types.ModuleType("pysr")
    mod.__version__ = "0.0-stub"

    class PySRRegressor:
        def __init__(self, **kwargs):
            record["kwargs"] = kwargs

        def fit(self, X, y, variable_names=None):
            record["variable_names"] = list(variable_names)
            record["X_shape"] = X.shape
            self.equations_ = pd.DataFrame({
                "complexity": [3, 7, 9],
                "loss": [0.3, 0.01, 0.0099],
                "equation": ["si * 2.0f-2", "(si * 1.2f-2) + ((so * inv_B) * 5.0f-1)",
                             "plus((si * 1.2f-2) + ((so * inv_B) * 5.0f-1), t_m1 * 0.0f0)"],
            })
            return self

    mod.PySRRegressor = PySRRegressor
    return mod


def _table(n=80, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"tp": rng.choice([1, 2], n), "batch_size": rng.choice([1.0, 8.0, 64.0], n),
                       "input_tokens": rng.uniform(100, 2000, n), "output_tokens": rng.uniform(20, 500, n)})
    df["energy_j"] = (0.012 * df.input_tokens + 0.5 * df.output_tokens / df.batch_size) * (
        1 + 0.01 * rng.standard_normal(n))
    return df


def test_stub_pysr_pass_through_and_auto(monkeypatch):
    record: dict = {}
    monkeypatch.setitem(sys.modules, "pysr", _stub_module(record))
    monkeypatch.setattr(P, "probe_pysr", lambda timeout=60.0: (True, "pysr stub"))
    df = _table()
    engine = PySR(random_state=7, niterations=12, maxsize=15, options={"populations": 3},
                  operators=["add", "mul", "div", "sub", "square", "log"])
    res = discover(df, engine=engine)
    assert res.engine_ == "pysr"
    kw = record["kwargs"]
    assert kw["deterministic"] is True and kw["parallelism"] == "serial"
    assert kw["random_state"] == 7 and kw["niterations"] == 12 and kw["maxsize"] == 15
    assert kw["binary_operators"] == ["+", "*", "/", "-"]
    assert kw["unary_operators"] == ["square", "log"]
    assert kw["populations"] == 3
    assert set(record["variable_names"]) >= {"si", "so", "inv_B"}
    assert res.terms_found() == ["si", "so/B"]
    np.testing.assert_allclose(res.predict(df), 0.012 * df.input_tokens + 0.5 * df.output_tokens / df.batch_size,
                               rtol=0.02)
    # "auto" takes PySR where the probe succeeds.
    assert discover(df, engine="auto").engine_ == "pysr"
    with pytest.raises(ValueError, match="operator"):
        discover(df, engine=PySR(operators=["add", "gamma"]))


def test_pysr_unavailable_error(monkeypatch):
    monkeypatch.setattr(P, "probe_pysr", lambda timeout=60.0: (False, "`import pysr` failed"))
    with pytest.raises(BackendUnavailableError, match="PYTHON_JULIACALL_EXE") as info:
        discover(_table(), engine="pysr")
    assert isinstance(info.value, ImportError)
    assert "JULIA_DEPOT_PATH" in str(info.value) and "PYTHON_JULIAPKG_OFFLINE=yes" in str(info.value)


def test_probe_runs_in_a_subprocess_with_offline_settings(tmp_path, monkeypatch):
    good = tmp_path / "good"
    good.mkdir()
    (good / "pysr.py").write_text(textwrap.dedent("""
        import os
        assert os.environ["PYTHON_JULIAPKG_OFFLINE"] == "yes"
        __version__ = "9.9-stub"
    """))
    monkeypatch.syspath_prepend(str(good))
    monkeypatch.setenv("PYTHONPATH", str(good))
    ok, msg = P.probe_pysr(timeout=60)
    assert ok and "9.9-stub" in msg
    assert "pysr" not in sys.modules or getattr(sys.modules["pysr"], "__version__", "") != "9.9-stub"

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pysr.py").write_text("raise OSError('urlopen error: network unreachable')\n")
    monkeypatch.syspath_prepend(str(bad))
    monkeypatch.setenv("PYTHONPATH", str(bad))
    ok, msg = P.probe_pysr(timeout=60)
    assert not ok and "network unreachable" in msg


def test_probe_reports_missing_package(monkeypatch):
    monkeypatch.setattr(P.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", "/nonexistent/julia-for-test")
    ok, msg = P.probe_pysr()
    assert not ok and "not installed" in msg


def _recording_stub(folder: Path, record: Path) -> Path:
    """A pysr module that, like juliapkg, writes into the Julia project it is given (by
    default a folder inside sys.prefix) and records where and with which settings."""
    folder.mkdir()
    (folder / "pysr.py").write_text(textwrap.dedent(f"""
        import json, os, sys
        project = os.environ.get("PYTHON_JULIAPKG_PROJECT") or os.path.join(sys.prefix, "julia_env")
        os.makedirs(os.path.join(project, "pyjuliapkg"), exist_ok=True)
        open(os.path.join(project, "pyjuliapkg", "meta.json"), "w").write("{{}}")
        json.dump({{"project": project, "bytecode": os.environ.get("PYTHONDONTWRITEBYTECODE")}},
                  open({str(record)!r}, "w"))
        __version__ = "9.9-stub"
    """))
    return folder


def test_probe_leaves_the_prefix_untouched(tmp_path, monkeypatch):
    import json

    stub = _recording_stub(tmp_path / "stub", tmp_path / "record.json")
    monkeypatch.delenv("PYTHON_JULIAPKG_PROJECT", raising=False)
    monkeypatch.syspath_prepend(str(stub))
    monkeypatch.setenv("PYTHONPATH", str(stub))
    prefix = Path(sys.prefix)
    before = sorted(p.name for p in prefix.iterdir())
    ok, msg = P.probe_pysr(timeout=60)
    assert ok, msg
    seen = json.loads((tmp_path / "record.json").read_text())
    project = Path(seen["project"])
    assert prefix not in project.parents and not project.exists()  # a temporary folder, removed
    assert seen["bytecode"] == "1"
    assert sorted(p.name for p in prefix.iterdir()) == before
    assert not (prefix / "julia_env").exists()


def test_probe_keeps_a_project_the_user_chose(tmp_path, monkeypatch):
    import json

    stub = _recording_stub(tmp_path / "stub", tmp_path / "record.json")
    mine = tmp_path / "my_julia_project"
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(mine))
    monkeypatch.syspath_prepend(str(stub))
    monkeypatch.setenv("PYTHONPATH", str(stub))
    assert P.probe_pysr(timeout=60)[0]
    assert json.loads((tmp_path / "record.json").read_text())["project"] == str(mine)


@pytest.mark.slow
def test_real_pysr_run():
    ok, msg = P.probe_pysr()
    if not ok:
        pytest.skip(f"PySR with a working Julia is not available: {msg}")
    df = _table(200)
    res = discover(df, engine=PySR(niterations=20, random_state=0))
    assert res.engine_ == "pysr"
    assert {"si", "so/B"} <= set(res.terms_found())
