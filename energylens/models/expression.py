"""Any discovered formula as a fitted closed form: :class:`ExpressionModel`.

:meth:`ExpressionModel.from_sympy` turns an expression found by symbolic regression into a
:class:`~energylens.models.base.ParametricModel`: every floating-point constant becomes a
named parameter (``a0, a1, ...``) that starts at the discovered value, the kernel and the
Jacobian (by symbolic differentiation) are compiled with :func:`sympy.lambdify` for numpy,
and the fit is the same :func:`scipy.optimize.least_squares` on relative errors as for the
twelve-parameter :class:`~energylens.EnergyLensModel`, so that both are compared on equal
terms.

The formula is kept as text (the constructor argument ``expression``) and is read back by
a whitelist parser over Python's :mod:`ast` (:func:`energylens.core.expressions.parse_expression`),
never by :func:`eval`; a model file cannot run code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import sympy

from ..core.expressions import parse_expression, symbol
from ..core.variables import TRANSFORMS, VARIABLE_COLUMNS
from .base import Parameter, ParametricModel

__all__ = ["ExpressionModel"]

_PARAM = re.compile(r"^a(\d+)$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _sym(name: str) -> sympy.Symbol:
    return symbol(name)


def _known_variables() -> dict[str, sympy.Expr]:
    """Names a formula may use for variables: short names, canonical columns, transforms."""
    out: dict[str, sympy.Expr] = {v: _sym(v) for v in VARIABLE_COLUMNS}
    out.update({col: _sym(v) for v, col in VARIABLE_COLUMNS.items()})
    for name, (text, needs) in TRANSFORMS.items():
        out[name] = parse_expression(text, needs)
    return out


class ExpressionModel(ParametricModel):
    """A closed form given by a formula, fitted like every other energylens model.

    Parameters
    ----------
    expression : str
        Formula of energy per request (J) in Python syntax. Parameters are named ``a0,
        a1, ...``; variables are the short names ``t, p, B, si, so, N`` (``B`` is the
        effective batch), the canonical columns ``tp, pp, batch_size, input_tokens,
        output_tokens, params_b``, the transforms ``inv_B, t_m1, p_m1, tp_prod, ctx`` or
        other numeric columns of the table. Allowed: numbers, ``+ - * / **``, unary
        minus, ``log, exp, sqrt, abs``. A formula without variables (a constant such as
        ``a0``) reads ``output_tokens`` only to count the rows.
    starts : dict, optional
        Start values of the parameters (default 1.0); :meth:`from_sympy` sets them to the
        discovered constants.
    loss, fixed, bounds, init, batch_rule, f_scale, max_nfev, poor_fit_mape
        See :class:`~energylens.models.base.ParametricModel`.

    Attributes
    ----------
    coef_ : ndarray
        Fitted ``a0, a1, ...``.
    params_ : DataFrame
        Values, standard errors and flags.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"input_tokens": [100.0, 200, 400, 800],
    ...                    "output_tokens": [50.0, 80, 20, 200]})
    >>> df["energy_j"] = 0.02 * df.input_tokens + 0.3 * df.output_tokens
    >>> m = ExpressionModel(expression="a0*si + a1*so").fit(df)
    >>> np.round(m.coef_, 4).tolist()
    [0.02, 0.3]
    """

    def __init__(
        self,
        *,
        expression: str | None = None,
        starts: Mapping[str, float] | None = None,
        loss="relative",
        fixed=None,
        bounds=None,
        init=None,
        batch_rule="auto",
        f_scale=0.05,
        max_nfev=None,
        poor_fit_mape=25.0,
    ):
        super().__init__(loss=loss, fixed=fixed, bounds=bounds, init=init, batch_rule=batch_rule,
                         f_scale=f_scale, max_nfev=max_nfev, poor_fit_mape=poor_fit_mape)
        self.expression = expression
        self.starts = starts

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sympy(
        cls,
        expr: sympy.Expr | str,
        features: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> ExpressionModel:
        """Build a model from a discovered expression.

        Every floating-point constant of ``expr`` becomes a parameter ``a0, a1, ...`` (in
        the order of the printed formula) starting at its value; integers and simple
        fractions (powers, the 1/2 of ``si + so/2``) stay part of the structure.

        Parameters
        ----------
        expr : sympy expression or str
            The formula (a string is parsed safely).
        features : iterable of str, optional
            Variable names the formula may use besides the known ones (other columns).
        **kwargs
            Constructor arguments (``loss``, ``batch_rule``, ``bounds``, ...).

        Examples
        --------
        >>> import sympy
        >>> si, so = sympy.symbols("si so")
        >>> m = ExpressionModel.from_sympy(0.02 * si + 0.3 * so)
        >>> m.expression, m.starts
        ('a0*so + a1*si', {'a0': 0.3, 'a1': 0.02})
        """
        names = _known_variables()
        for f in features or ():
            if f not in names:
                if not _IDENT.match(f) or _PARAM.match(f):
                    raise ValueError(f"feature name {f!r} is not a valid variable name.")
                names[f] = _sym(f)
        if isinstance(expr, str):
            expr = parse_expression(expr, names)
        expr = sympy.sympify(expr)
        clash = [str(s) for s in expr.free_symbols if _PARAM.match(str(s))]
        if clash:
            raise ValueError(f"the expression already uses parameter-like names {clash}; rename them.")
        # Variables given as canonical columns or transforms become short names.
        subs = {_sym(k): v for k, v in names.items() if _sym(k) != v}
        expr = expr.xreplace(subs)
        starts: dict[str, float] = {}
        counter = [0]

        def rebuild(e):
            if isinstance(e, sympy.Float):
                name = f"a{counter[0]}"
                counter[0] += 1
                starts[name] = float(e)
                return _sym(name)
            if not e.args:
                return e
            return e.func(*[rebuild(a) for a in e.args])

        # Visit the constants in the order of the printed formula, for stable names.
        ordered = sympy.Add(*sympy.Add.make_args(expr))
        new = rebuild(ordered)
        if not starts:
            raise ValueError("the expression has no numeric constant to fit.")
        # Rename in order of appearance in the printed text.
        printed = str(new)
        order = sorted(starts, key=lambda k: [m.start() for m in re.finditer(rf"\b{k}\b", printed)][0])
        rename = {_sym(old): _sym(f"__p{i}") for i, old in enumerate(order)}
        new = new.xreplace(rename)
        final = {_sym(f"__p{i}"): _sym(f"a{i}") for i in range(len(order))}
        new = new.xreplace(final)
        starts = {f"a{i}": starts[old] for i, old in enumerate(order)}
        model = cls(expression=str(new), starts=starts, **kwargs)
        model._parsed()  # validate now
        return model

    # ------------------------------------------------------------------ parsing
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_cache", None)  # compiled functions are rebuilt after unpickling
        return state

    def _parsed(self) -> dict:
        text = self._setting("expression")
        cache = self.__dict__.get("_cache")
        if cache is not None and cache["text"] == text:
            return cache
        if not isinstance(text, str) or not text.strip():
            raise ValueError("The 'expression' parameter of ExpressionModel must be a non-empty "
                             f"formula str. Got {text!r} instead.")
        tree = _names_in(text)
        names = _known_variables()
        for n in tree:
            if n not in names and (_PARAM.match(n) or _IDENT.match(n)):
                names[n] = _sym(n)
        expr = parse_expression(text, names)
        params = sorted((str(s) for s in expr.free_symbols if _PARAM.match(str(s))),
                        key=lambda s: int(s[1:]))
        if not params:
            raise ValueError(f"the expression {text!r} has no parameter a0, a1, ...")
        variables = sorted((str(s) for s in expr.free_symbols if not _PARAM.match(str(s))),
                           key=_variable_order)
        vs = [_sym(v) for v in variables]
        ps = [_sym(p) for p in params]
        f = sympy.lambdify(vs + ps, expr, "numpy")
        grads = [sympy.lambdify(vs + ps, sympy.diff(expr, p), "numpy") for p in ps]
        parts = sympy.Add.make_args(expr)
        linear = {p for p in params if _sym(p) not in sympy.diff(expr, _sym(p)).free_symbols}
        cache = {"text": text, "expr": expr, "params": params, "variables": tuple(variables),
                 "f": f, "grads": grads, "parts": parts, "linear": linear}
        self.__dict__["_cache"] = cache
        return cache

    @property
    def sympy_expr(self) -> sympy.Expr:
        """The formula as sympy (parameters as symbols ``a0, a1, ...``)."""
        return self._parsed()["expr"]

    @property
    def formula(self) -> str:  # type: ignore[override]
        text = self._setting("expression")
        return f"E = {text}" if text else ""

    def _model_variables(self) -> tuple[str, ...]:
        # A constant formula (``a0``) reads the output length, which every table has, to
        # count its rows; the energy does not depend on it.
        return self._parsed()["variables"] or ("so",)

    def _param_specs(self) -> tuple[Parameter, ...]:
        P = self._parsed()
        starts = self._setting("starts") or {}
        unknown = set(starts) - set(P["params"])
        if unknown:
            raise ValueError(f"The 'starts' parameter of ExpressionModel names unknown parameters "
                             f"{sorted(unknown)}; parameters are {P['params']}.")
        # A parameter the data cannot identify (e.g. one constant too many in a product)
        # is held at its start value rather than at 0, which could remove a whole term.
        return tuple(Parameter(p, float(starts.get(p, 1.0)), unit="",
                               meaning="coefficient of the discovered formula",
                               neutral=float(starts.get(p, 1.0)), linear=p in P["linear"])
                     for p in P["params"])

    # ------------------------------------------------------------------ kernel
    def _args(self, V, theta):
        P = self._parsed()
        return [V[v] for v in P["variables"]] + [float(x) for x in theta]

    def _n(self, V) -> int:
        """Rows of the variables ``V`` (a constant formula reads ``so`` for them)."""
        if not V:
            raise ValueError("ExpressionModel: no variable to count the rows by.")
        return len(next(iter(V.values())))

    def _kernel(self, V, theta):
        P = self._parsed()
        with np.errstate(all="ignore"):
            out = P["f"](*self._args(V, theta))
        return np.broadcast_to(np.asarray(out, dtype=float), (self._n(V),)).copy()

    def _jacobian(self, V, theta):
        P = self._parsed()
        n = self._n(V)
        args = self._args(V, theta)
        J = np.empty((n, len(P["params"])))
        with np.errstate(all="ignore"):
            for j, g in enumerate(P["grads"]):
                J[:, j] = np.broadcast_to(np.asarray(g(*args), dtype=float), (n,))
        return J

    def _components(self, V, theta):
        """Additive terms of the formula: those with ``so`` are decode, else those with
        ``si`` prefill, the rest static."""
        P = self._parsed()
        n = self._n(V)
        vs = [_sym(v) for v in P["variables"]]
        ps = [_sym(p) for p in P["params"]]
        acc = {"prefill_j": np.zeros(n), "decode_j": np.zeros(n), "static_j": np.zeros(n)}
        for part in P["parts"]:
            names = {str(s) for s in part.free_symbols}
            key = "decode_j" if "so" in names else "prefill_j" if "si" in names else "static_j"
            fn = sympy.lambdify(vs + ps, part, "numpy")
            with np.errstate(all="ignore"):
                acc[key] = acc[key] + np.broadcast_to(np.asarray(fn(*self._args(V, theta)), float), (n,))
        return pd.DataFrame(acc)

    # ------------------------------------------------------------------ persistence
    def _get_extra_state(self) -> dict:
        P = self._parsed()
        return {"expression": self._setting("expression"), "variables": list(P["variables"]),
                "parameters": list(P["params"])}

    @classmethod
    def _from_extra_state(cls, init_params: dict, extra: dict) -> ExpressionModel:
        model = super()._from_extra_state(init_params, extra)
        P = model._parsed()  # raises ValueError on anything but a plain formula
        if extra and extra.get("parameters") not in (None, P["params"]):
            raise ValueError("the stored parameter names do not match the formula.")
        return model

    def _validate_params(self):
        super()._validate_params()
        self._parsed()


def _names_in(text: str) -> set[str]:
    import ast

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _variable_order(v: str) -> tuple[int, str]:
    order = list(VARIABLE_COLUMNS)  # the kernel's argument order: known variables first
    return (order.index(v), v) if v in order else (len(order), v)
