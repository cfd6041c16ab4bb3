"""The PySR engine, used only where Julia works, and a reader of PySR's result files.

``import pysr`` starts Julia and, on first use, downloads Julia and its packages. energylens
never imports it by accident: :func:`probe_pysr` first tries ``import pysr`` in a
subprocess that cannot download and writes nothing into this Python environment, and only
when that succeeds is PySR imported here. Otherwise a
:class:`~energylens.exceptions.BackendUnavailableError` says how to enable it.

The probe's subprocess runs with offline settings, a timeout, no bytecode writing, and
juliapkg's project (``PYTHON_JULIAPKG_PROJECT``, by default a folder inside ``sys.prefix``)
pointed at a temporary folder that is removed afterwards, unless the user chose a project.

Results come from PySR's ``equations_`` table or its ``hall_of_fame.csv`` (columns
``Complexity, Loss, Equation``), parsed with our own map of PySR's operator names to sympy
(:data:`~energylens.core.expressions.PYSR_OPERATORS`) and Julia float literals.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import sympy

from ...core.expressions import expression_complexity, parse_pysr_equation
from ...core.options import Integral, Interval, Real, StrOptions
from ...core.progress import logger
from ...exceptions import BackendUnavailableError
from .base import Engine
from .linear import Criterion, simplify_formula

__all__ = ["ENABLE_HINT", "PySR", "probe_pysr", "require_pysr", "read_hall_of_fame",
           "PYSR_BINARY", "PYSR_UNARY"]

ENABLE_HINT = (
    "PySR needs a working Julia. Either let its first import download Julia (needs internet: "
    "run `python -c 'import pysr'` once), or point it at an existing Julia: set "
    "PYTHON_JULIACALL_EXE (the julia binary) and PYTHON_JULIACALL_PROJECT (a Julia project with "
    "SymbolicRegression installed), or set PYTHON_JULIAPKG_EXE with PYTHON_JULIAPKG_OFFLINE=yes "
    "and JULIA_DEPOT_PATH (a depot that already holds the packages)."
)
#: Our operator names -> PySR's binary and unary operators.
PYSR_BINARY = {"add": "+", "+": "+", "sub": "-", "-": "-", "mul": "*", "*": "*", "div": "/",
               "/": "/", "pow": "^", "^": "^"}
PYSR_UNARY = {"exp": "exp", "log": "log", "sqrt": "sqrt", "square": "square", "cube": "cube",
              "inv": "inv", "abs": "abs", "neg": "neg"}
_OFFLINE_ENV = {"PYTHON_JULIAPKG_OFFLINE": "yes", "JULIA_PKG_OFFLINE": "true",
                "JULIA_PKG_SERVER": "", "PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION": "no",
                "PYTHONDONTWRITEBYTECODE": "1"}
_ENV_KEYS = ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_PROJECT", "PYTHON_JULIAPKG_EXE",
             "PYTHON_JULIAPKG_OFFLINE", "PYTHON_JULIAPKG_PROJECT", "JULIA_DEPOT_PATH", "PYTHONPATH")


def probe_pysr(timeout: float = 60.0) -> tuple[bool, str]:
    """Whether ``import pysr`` works here, tried in a subprocess that cannot download.

    Returns
    -------
    ok : bool
    message : str
        Why not (or the PySR version).
    """
    return _probe(timeout, tuple(os.environ.get(k, "") for k in _ENV_KEYS))


def _probe_env(project: str) -> dict[str, str]:
    env = {**os.environ, **_OFFLINE_ENV}
    # An offline setting or a Julia project the user chose is theirs; keep it.
    for k in ("PYTHON_JULIAPKG_OFFLINE", "PYTHON_JULIAPKG_PROJECT"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    if not env.get("PYTHON_JULIAPKG_PROJECT"):
        env["PYTHON_JULIAPKG_PROJECT"] = project
    return env


@functools.lru_cache(maxsize=8)
def _probe(timeout: float, env_key: tuple) -> tuple[bool, str]:
    if importlib.util.find_spec("pysr") is None:
        return False, "PySR is not installed (pip install pysr)."
    code = "import pysr, sys; sys.stdout.write(getattr(pysr, '__version__', 'unknown'))"
    with tempfile.TemporaryDirectory(prefix="energylens-juliapkg-") as project:
        try:
            proc = subprocess.run([sys.executable, "-c", code], env=_probe_env(project),
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"`import pysr` did not finish within {timeout:g} s (offline)."
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return False, f"`import pysr` failed without network access: {tail[0]}"
    return True, f"pysr {proc.stdout.strip()}"


def require_pysr(timeout: float = 60.0):
    """Import PySR after a successful probe, else raise BackendUnavailableError."""
    ok, msg = probe_pysr(timeout)
    if not ok:
        raise BackendUnavailableError(f"The 'pysr' discovery engine is unavailable: {msg} {ENABLE_HINT}")
    from ..._optional import import_optional

    return import_optional("pysr", purpose="run the 'pysr' discovery engine")


def _operators(operators: Sequence[str]) -> tuple[list[str], list[str]]:
    binary, unary = [], []
    for op in operators:
        if op in PYSR_BINARY:
            if PYSR_BINARY[op] not in binary:
                binary.append(PYSR_BINARY[op])
        elif op in PYSR_UNARY:
            unary.append(PYSR_UNARY[op])
        else:
            raise ValueError(f"operator {op!r} is not supported by the pysr engine; supported: "
                             f"{sorted(PYSR_BINARY) + sorted(PYSR_UNARY)}.")
    return binary, unary


class PySR(Engine):
    """Symbolic regression with PySR (Julia's SymbolicRegression.jl), where Julia works.

    Runs are deterministic: ``deterministic=True, parallelism='serial'`` and the seed.

    Parameters
    ----------
    operators : sequence of str, default=("add", "sub", "mul", "div")
        Our operator names (:data:`PYSR_BINARY`, :data:`PYSR_UNARY`).
    maxsize : int, default=25
        Largest formula size.
    niterations : int, default=40
    random_state : int, default=0
    simplify : bool, default=True
        Expand each formula into additive terms, refit them and drop the terms ``criterion``
        rejects.
    criterion : {"mdl", "bic"}, default="mdl"
    options : dict, optional
        Further keyword arguments of ``pysr.PySRRegressor``.
    probe_timeout : float, default=60
        Seconds allowed to the import probe (:func:`probe_pysr`).
    """

    name: ClassVar[str] = "pysr"
    _parameter_constraints: ClassVar[dict] = {
        "operators": ["array-like"],
        "maxsize": [Interval(Integral, 1, None, closed="left")],
        "niterations": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "simplify": ["boolean"],
        "criterion": [StrOptions({"mdl", "bic"})],
        "options": [dict, None],
        "probe_timeout": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, operators: Sequence[str] = ("add", "sub", "mul", "div"), maxsize: int = 25,
                 niterations: int = 40, random_state: int = 0, simplify: bool = True,
                 criterion: Criterion = "mdl", options: Mapping[str, Any] | None = None,
                 probe_timeout: float = 60.0):
        self.operators = operators
        self.maxsize = maxsize
        self.niterations = niterations
        self.random_state = random_state
        self.simplify = simplify
        self.criterion = criterion
        self.options = options
        self.probe_timeout = probe_timeout

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return probe_pysr()

    def _search(self, F, y, weight, definitions, relative, progress):
        binary, unary = _operators(self.operators)
        pysr = require_pysr(self.probe_timeout)
        names = [str(c) for c in F.columns]
        show = bool(progress) if progress is not None else bool(getattr(sys.stderr, "isatty", bool)())
        kwargs = dict(binary_operators=binary, unary_operators=unary, maxsize=int(self.maxsize),
                      niterations=int(self.niterations), deterministic=True, parallelism="serial",
                      random_state=int(self.random_state), progress=show)
        kwargs.update(dict(self.options or {}))
        model = pysr.PySRRegressor(**kwargs)
        model.fit(F.to_numpy(dtype=float), np.asarray(y, float), variable_names=names)
        eqs = getattr(model, "equations_", None)
        if eqs is None:
            raise RuntimeError("PySR returned no equations_ table.")
        table = read_hall_of_fame(pd.DataFrame(eqs), names)
        logger.info("pysr: %d equations", len(table))
        V = {c: F[c].to_numpy() for c in names}
        subs = {sympy.Symbol(k): v for k, v in definitions.items()}
        rows = []
        for expr in table["sympy"]:
            e = sympy.sympify(expr).xreplace(subs)
            if self.simplify:
                e = simplify_formula(e, V, y, relative=relative, criterion=self.criterion)
            rows.append((e, expression_complexity(e), {}))
        info = {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool, list))}
        return rows, None, info


def read_hall_of_fame(source: str | os.PathLike | pd.DataFrame, variable_names: Sequence[str]) -> pd.DataFrame:
    """Read PySR's ``hall_of_fame.csv`` (or its ``equations_`` table) into our table.

    Parameters
    ----------
    source : path or DataFrame
        The CSV file (``Complexity, Loss, Equation``; PySR's operator names, Julia floats)
        or a DataFrame with those columns in any case.
    variable_names : sequence of str
        Names of the variables, in the order PySR saw them (``x0, x1, ...`` map to these).

    Returns
    -------
    DataFrame
        ``complexity, loss, equation, sympy``.

    Examples
    --------
    >>> import pandas as pd
    >>> hof = pd.DataFrame({"Complexity": [3], "Loss": [0.5], "Equation": ["square(x0) * 2f0"]})
    >>> read_hall_of_fame(hof, ["si"])["sympy"].iloc[0]
    2.0*si**2
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        where = "<DataFrame>"
    else:
        where = str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"no PySR hall of fame at {where}")
        df = pd.read_csv(source, dtype=str, keep_default_na=False)
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in ("complexity", "loss", "equation") if c not in cols]
    if missing:
        raise ValueError(f"PySR table {where} lacks column(s) {missing}; expected Complexity, Loss, "
                         f"Equation (got {list(map(str, df.columns))}).")
    rows = []
    for i, r in df.iterrows():
        text = str(r[cols["equation"]])
        try:
            expr = parse_pysr_equation(text, list(variable_names))
        except ValueError as exc:
            raise ValueError(f"PySR table {where}, row {i}: cannot read equation {text!r}: {exc}") from exc
        try:
            loss = float(str(r[cols["loss"]]).replace("f", "e"))
            complexity = int(float(r[cols["complexity"]]))
        except ValueError as exc:
            raise ValueError(f"PySR table {where}, row {i}: bad Complexity or Loss ({exc}).") from exc
        rows.append({"complexity": complexity, "loss": loss, "equation": str(expr), "sympy": expr})
    return pd.DataFrame(rows, columns=["complexity", "loss", "equation", "sympy"])
