r"""A closed form derived from discovered terms: :class:`DerivedEnergyModel`.

Energy per request as a sum of named terms,

.. math::

    E = \sum_j k_j\, T_j(t, p, d, B, s_i, s_o),

each term :math:`T_j` a product of a *base* (what the energy is spent on) and at most one
*factor* (how it scales with the parallel layout):

==================  ============  ==================================================
base                parameter     meaning
==================  ============  ==================================================
``si``              ``k_si``      energy per input token (prefill compute)
``si**2``           ``k_si2``     prefill attention, per squared input token
``1/B``             ``k_per_B``   static energy per request at batch 1, shared by B
``so``              ``k_so``      energy per output token (decode compute)
``so/B``            ``k_so_per_B``  weight reads per output token, shared by B
``so*(si + so/2)``  ``k_so_ctx``  KV-cache reads per output token and token of context
``1``               ``k_const``   fixed energy per request
==================  ============  ==================================================

and factors ``t - 1`` (``_tm1``: per extra tensor-parallel GPU), ``p - 1`` (``_pm1``: per
extra pipeline stage), ``t*p`` (``_tp``: per GPU of the replica) and ``d`` (``_d``: per
replica). Any other term (from a genetic engine) is allowed and named after its text.

The parameters are named after the term they multiply, carry the unit that makes the term
joules (``J/token``, ``J/token^2``, ``J/GPU`` ...) and are non-negative (an energy, or an
overhead per GPU or stage, is never negative). The form is linear in them, so the fit
is a relative-error non-negative least-squares solve refined by the common machinery of
:class:`~energylens.models.base.ParametricModel`: standard errors, identifiability from the
rank of the Jacobian, intervals, the training domain, ``fit_report()`` and JSON files.

:func:`energylens.derive_model` finds the terms by symbolic regression with bootstrap
stability selection and records how often each was selected (``selection_frequency``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import sympy

from ..core.expressions import parse_expression, symbol
from ..core.variables import VARIABLES, legend
from .base import Parameter
from .linear_forms import LinearFormModel

__all__ = ["DerivedEnergyModel", "BASE_TERMS", "FACTORS", "term_info", "LATEX_NAMES"]

#: Base terms: text -> (name token, denominator token, phase, meaning).
BASE_TERMS: dict[str, tuple[str, str, str, str]] = {
    "si": ("si", "", "prefill", "energy per input token (prefill compute)"),
    "si**2": ("si2", "", "prefill", "prefill attention energy per squared input token"),
    "1/B": ("", "B", "static", "static energy per request at batch 1, shared by the running batch"),
    "so": ("so", "", "decode", "energy per output token (decode compute)"),
    "so/B": ("so", "B", "decode",
             "weight reads per output token at batch 1, shared by the running batch"),
    "so*(si + so/2)": ("so_ctx", "", "decode",
                       "KV-cache reads per output token and token of mean context si + so/2"),
    "1": ("const", "", "static", "fixed energy per request"),
}
#: Factors: text -> (name token, phrase).
FACTORS: dict[str, tuple[str, str]] = {
    "t - 1": ("tm1", "per extra tensor-parallel GPU"),
    "p - 1": ("pm1", "per extra pipeline stage"),
    "t*p": ("tp", "per GPU of the replica"),
    "d": ("d", "per data-parallel replica"),
}
#: LaTeX spelling of the variables whose short names are more than one letter.
LATEX_NAMES: dict[str, str] = {"si": "s_i", "so": "s_o", "Na": "N_a"}
#: Unit of each variable in a term (the batch is a count of requests sharing the work).
_UNITS = {"si": "token", "so": "token", "t": "GPU", "p": "stage", "d": "replica", "e": "GPU",
          "N": "1e9 params", "Na": "1e9 params"}
_NAMES = {v: symbol(v) for v in VARIABLES}


def _parse(text: str) -> sympy.Expr:
    return parse_expression(text, _NAMES)


_BASE_EXPR = {k: _parse(k) for k in BASE_TERMS}
_FACTOR_EXPR = {k: _parse(k) for k in FACTORS}


def _decompose(term: sympy.Expr) -> tuple[str, str | None] | None:
    """(base text, factor text or None) of a term of the library, else None."""
    for ftext, f in [(None, sympy.Integer(1)), *_FACTOR_EXPR.items()]:
        for btext, b in _BASE_EXPR.items():
            if sympy.expand(term - b * f) == 0:
                return btext, ftext
    return None


def _sanitize(term: sympy.Expr) -> str:
    text = str(term).replace(" ", "").replace("**", "")
    for old, new in (("*", "_"), ("/", "_per_"), ("-", "m"), ("+", "p"), ("(", ""), (")", ""),
                     (".", "")):
        text = text.replace(old, new)
    return re.sub(r"[^A-Za-z0-9_]", "", text) or "term"


def _unit(term: sympy.Expr) -> str:
    """Unit of the coefficient that makes ``term`` joules per request."""
    num, den = sympy.fraction(sympy.factor_terms(term))
    count: Counter = Counter()
    for part, sign in ((num, 1), (den, -1)):
        for base, e in part.as_powers_dict().items():
            if base.is_Number or not e.is_Integer:
                continue
            units = {_UNITS.get(str(s)) for s in base.free_symbols}
            if len(units) == 1 and None not in units:
                count[units.pop()] += sign * int(e)
    symbols = {str(s) for s in term.free_symbols}
    if {"t", "p"} <= symbols and count["GPU"] > 0 and count["stage"] == count["GPU"]:
        count["stage"] = 0  # t*p: the GPUs of a replica
    up = [u if e == -1 else f"{u}^{-e}" for u, e in count.items() if e < 0]
    down = [u if e == 1 else f"{u}^{e}" for u, e in count.items() if e > 0]
    text = "J" + "".join(f"*{u}" for u in up)
    if down:
        text += "/" + (down[0] if len(down) == 1 else "(" + "*".join(down) + ")")
    return text


def term_info(text: str) -> dict[str, Any]:
    """Name, unit, phase and meaning of one term of a derived form.

    Examples
    --------
    >>> info = term_info("so*(t - 1)/B")
    >>> info["name"], info["unit"], info["phase"]
    ('k_so_tm1_per_B', 'J/(token*GPU)', 'decode')
    >>> term_info("t*p/B")["unit"]
    'J/GPU'
    """
    expr = _parse(text) if isinstance(text, str) else sympy.sympify(text)
    if expr.atoms(sympy.Float):
        raise ValueError(f"term {text!r} carries a numeric coefficient; terms are products of "
                         "variables (their coefficients are the parameters).")
    parts = _decompose(expr)
    if parts is None:
        symbols = {str(s) for s in expr.free_symbols}
        phase = "decode" if "so" in symbols else "prefill" if "si" in symbols else "static"
        name = f"k_{_sanitize(expr)}"
        meaning = f"coefficient of the term {expr}"
    else:
        btext, ftext = parts
        tok, den, phase, meaning = BASE_TERMS[btext]
        ftok, phrase = FACTORS[ftext] if ftext else ("", "")
        if ftext and btext == "1":
            tok = ""
        name = "k_" + "_".join(x for x in (tok, ftok) if x)
        if den:
            name = (name + "_per_" + den) if name != "k_" else f"k_per_{den}"
        if phrase:
            meaning = f"{meaning}, {phrase}"
    return {"term": str(expr), "expr": expr, "name": name, "unit": _unit(expr), "phase": phase,
            "meaning": meaning, "variables": tuple(str(s) for s in _ordered(expr.free_symbols))}


def _ordered(symbols: Iterable[sympy.Symbol]) -> list[sympy.Symbol]:
    order = list(VARIABLES)
    return sorted(symbols, key=lambda s: (order.index(str(s)) if str(s) in order else 99, str(s)))


def _column(expr: sympy.Expr, fn, V: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    powers = expr.as_powers_dict()
    with np.errstate(all="ignore"):
        if expr == 1:
            return np.ones(n)
        if all(b.is_Symbol and e.is_Integer for b, e in powers.items()):
            col = np.ones(n)
            for b, e in powers.items():
                col = col * np.asarray(V[str(b)], float) ** int(e)
            return col
        args = [V[str(s)] for s in _ordered(expr.free_symbols)]
        return np.broadcast_to(np.asarray(fn(*args), dtype=float), (n,)).copy()


class DerivedEnergyModel(LinearFormModel):
    """Energy per request as a sum of named terms with non-negative coefficients.

    Usually built by :func:`energylens.derive_model`, which finds the terms by symbolic
    regression; any list of terms in the short variable names works.

    Parameters
    ----------
    terms : sequence of str
        The terms, e.g. ``["si", "so/B", "so", "t*p/B", "1"]`` (short names ``t, p, d, B,
        si, so, N``; ``B`` is the effective batch of ``batch_rule``). Each term gets one
        parameter named after it (``k_si``, ``k_so_per_B``, ``k_tp_per_B``, ``k_const``).
    selection_frequency : dict, optional
        Term -> share of bootstrap resamples in which the search selected it (written by
        :func:`~energylens.derive_model`; kept by ``clone`` and in model files, and shown in
        the parameters' meanings).
    loss, fixed, bounds, init, batch_rule, f_scale, max_nfev, poor_fit_mape
        See :class:`~energylens.models.base.ParametricModel`.

    Attributes
    ----------
    coef_ : ndarray
        Fitted coefficients, in the order of ``terms``.
    params_ : DataFrame
        Values, standard errors, bounds, units, meanings and flags.
    derivation_ : Derivation
        Set by :func:`~energylens.derive_model` only: how the terms were found (not kept by
        ``clone`` or in files).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"input_tokens": [100.0, 200, 400, 800, 300],
    ...                    "output_tokens": [50.0, 80, 20, 200, 100],
    ...                    "batch_size": [1.0, 8, 4, 16, 2]})
    >>> df["energy_j"] = 0.02 * df.input_tokens + 0.3 * df.output_tokens / df.batch_size
    >>> m = DerivedEnergyModel(terms=["si", "so/B"], batch_rule="cap").fit(df)
    >>> m.parameter_names, np.round(m.coef_, 4).tolist()
    (['k_si', 'k_so_per_B'], [0.02, 0.3])
    >>> m.params_.loc["k_so_per_B", "unit"]
    'J/token'
    >>> print(m.equation())
    E = 0.02*si + 0.3*so/B
    """

    _parameter_constraints: ClassVar[dict] = {
        **LinearFormModel._parameter_constraints,
        "terms": ["array-like", None],
        "selection_frequency": [Mapping, None],
    }

    def __init__(self, *, terms: Sequence[str] | None = None,
                 selection_frequency: Mapping[str, float] | None = None, loss="relative",
                 fixed=None, bounds=None, init=None, batch_rule="auto", f_scale=0.05, max_nfev=None,
                 poor_fit_mape=25.0):
        super().__init__(loss=loss, fixed=fixed, bounds=bounds, init=init, batch_rule=batch_rule,
                         f_scale=f_scale, max_nfev=max_nfev, poor_fit_mape=poor_fit_mape)
        self.terms = terms
        self.selection_frequency = selection_frequency

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_expression(cls, expr: sympy.Expr | str, **kwargs: Any) -> DerivedEnergyModel:
        """A model with the additive terms of a discovered formula (its constants dropped;
        the coefficients are refitted).

        Examples
        --------
        >>> DerivedEnergyModel.from_expression("0.02*si + 0.5*so/B + 1.5").terms
        ['si', 'so/B', '1']
        """
        e = _parse(expr) if isinstance(expr, str) else sympy.sympify(expr)
        terms: list[str] = []
        for a in sympy.Add.make_args(sympy.expand(e)):
            _, rest = a.as_coeff_Mul()
            text = "1" if a.is_Number else str(rest)
            if text not in terms:
                terms.append(text)
        return cls(terms=sorted(terms, key=lambda t: t == "1"), **kwargs)

    def _parsed(self) -> dict:
        terms, freq = self._setting("terms"), self._setting("selection_frequency")
        key = None if terms is None else tuple(terms)
        cache = self.__dict__.get("_cache")
        if cache is not None and cache["key"] == key and cache["freq"] == freq:
            return cache
        if key is None or not key or any(not isinstance(t, str) for t in key):
            raise ValueError("The 'terms' parameter of DerivedEnergyModel must be a non-empty "
                             f"sequence of term texts (e.g. ['si', 'so/B']). Got {terms!r} instead.")
        infos = [term_info(t) for t in key]
        seen: dict[sympy.Expr, str] = {}
        for t, info in zip(key, infos):
            if info["expr"] in seen or info["expr"] == 0:
                raise ValueError(f"term {t!r} repeats {seen.get(info['expr'], '0')!r}; each term "
                                 "may appear once.")
            seen[info["expr"]] = t
        names = Counter(i["name"] for i in infos)
        for i, info in enumerate(infos):
            if names[info["name"]] > 1:
                info["name"] = f"{info['name']}_{i}"
        specs = tuple(self._spec(info) for info in infos)
        symbols = tuple(str(s) for s in _ordered({s for i in infos for s in i["expr"].free_symbols}))
        variables = symbols
        if not variables:
            # A form of constants alone (terms=["1"]) reads the output length, which every
            # table has, for its rows; the energy per request does not depend on it.
            variables = ("so",)
        fns = [sympy.lambdify(_ordered(i["expr"].free_symbols), i["expr"], "numpy") for i in infos]
        cache = {"key": key, "freq": freq, "infos": infos, "specs": specs,
                 "variables": variables, "symbols": symbols, "fns": fns}
        self.__dict__["_cache"] = cache
        return cache

    def _spec(self, info: dict) -> Parameter:
        meaning = info["meaning"]
        freq = (self._setting("selection_frequency") or {}).get(info["term"])
        if freq is not None:
            meaning += f"; selected in {float(freq):.0%} of bootstrap resamples"
        return Parameter(info["name"], 1.0, 0.0, np.inf, info["unit"], meaning,
                         informed_by=info["variables"], neutral=0.0)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_cache", None)  # compiled functions are rebuilt after unpickling
        return state

    @property
    def _parameters(self) -> tuple[Parameter, ...]:  # type: ignore[override]
        return self._parsed()["specs"]

    def _model_variables(self) -> tuple[str, ...]:
        return self._parsed()["variables"]

    def _validate_params(self):
        super()._validate_params()
        self._parsed()

    # ------------------------------------------------------------------ kernel
    def _basis(self, V):
        P = self._parsed()
        n = len(next(iter(V.values()))) if V else 1
        return np.column_stack([_column(i["expr"], fn, V, n) for i, fn in zip(P["infos"], P["fns"])])

    def _components(self, V, theta):
        A = self._basis(V) * np.asarray(theta, float)
        phases = np.array([i["phase"] for i in self._parsed()["infos"]])
        return pd.DataFrame({f"{ph}_j": A[:, phases == ph].sum(axis=1)
                             for ph in ("prefill", "decode", "static")})

    # ------------------------------------------------------------------ presentation
    @property
    def formula(self) -> str:  # type: ignore[override]
        if self._setting("terms") is None:
            return ""
        P = self._parsed()
        parts = [_times(i["name"], i["expr"]) for i in P["infos"]]
        text = "E = " + " + ".join(parts)
        return f"{text}  (where {self.legend()})" if P["symbols"] else text

    def legend(self) -> str:
        """What the symbols of the form mean (:func:`energylens.core.variables.legend`)."""
        return legend(list(self._parsed()["symbols"]))

    def _pieces(self, digits: int | None) -> list[sympy.Expr]:
        """Each term times its fitted constant (or its parameter before a fit), in order."""
        P = self._parsed()
        if hasattr(self, "coef_"):
            coefs = [sympy.Float(float(c), digits or 15) for c in self.coef_]
        else:
            coefs = [symbol(i["name"]) for i in P["infos"]]
        # A number times a sum would be distributed: keep the sum whole, as in the form.
        return [sympy.Mul(c, i["expr"], evaluate=not i["expr"].is_Add)
                for c, i in zip(coefs, P["infos"])]

    def equation(self, digits: int | None = 4) -> str:
        """The form as text, ``E = ...``, in the order of ``terms``: fitted constants to
        ``digits`` significant digits (``None``: full precision), or the parameter names
        before a fit."""
        return "E = " + " + ".join(str(e) for e in self._pieces(digits))

    def latex(self, digits: int | None = 4) -> str:
        """The form in LaTeX (``s_i``, ``s_o`` for the lengths; constants as in :meth:`equation`).

        Examples
        --------
        >>> DerivedEnergyModel(terms=["si", "so/B"]).latex()
        'E = k_{s_i} s_i + \\\\frac{k_{s_o/B} s_o}{B}'
        """
        pieces = self._pieces(digits)
        names = {s: LATEX_NAMES[str(s)] for e in pieces for s in e.free_symbols
                 if str(s) in LATEX_NAMES}
        for i in self._parsed()["infos"]:
            term = sympy.latex(i["expr"], symbol_names=names, fold_short_frac=True).replace(" ", "")
            names[symbol(i["name"])] = "k_{" + ("0" if i["expr"] == 1 else term) + "}"
        return "E = " + " + ".join(sympy.latex(e, symbol_names=names, min=-3, max=3) for e in pieces)

    def terms_table(self) -> pd.DataFrame:
        """One row per term: parameter, term, unit, phase, selection frequency, meaning."""
        P = self._parsed()
        freq = self._setting("selection_frequency") or {}
        return pd.DataFrame([{"parameter": i["name"], "term": i["term"], "unit": i["unit"],
                              "phase": i["phase"], "frequency": freq.get(i["term"], np.nan),
                              "meaning": i["meaning"]} for i in P["infos"]])

    # ------------------------------------------------------------------ persistence
    def _get_extra_state(self) -> dict:
        return {"terms": [i["term"] for i in self._parsed()["infos"]],
                "parameters": self.parameter_names}

    @classmethod
    def _from_extra_state(cls, init_params: dict, extra: dict) -> DerivedEnergyModel:
        model = super()._from_extra_state(init_params, extra)
        model._parsed()  # raises ValueError on anything but plain terms
        if extra and extra.get("parameters") not in (None, model.parameter_names):
            raise ValueError("the stored parameter names do not match the terms.")
        return model


def _wrap(expr: sympy.Expr) -> str:
    return f"({expr})" if expr.is_Add else str(expr)


def _times(name: str, expr: sympy.Expr) -> str:
    """``name`` times a term, as text: ``k_si*si``, ``k_per_B/B``, ``k_pm1*(p - 1)``."""
    num, den = sympy.fraction(expr)
    text = name if num == 1 else f"{name}*{_wrap(num) if den != 1 else _wrap(expr)}"
    if den != 1 and num != expr:
        text += f"/{den}" if den.is_Symbol else f"/({den})"
    return text
