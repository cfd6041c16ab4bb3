"""Safe conversion of formula text to sympy, and the PySR operator map.

sympy's own ``sympify`` and ``parse_expr`` evaluate their input with :func:`eval`, so a
formula read from a model file or from a search engine's output could run arbitrary
code. :func:`parse_expression` instead walks Python's :mod:`ast` of the text with a
whitelist of node types (numbers, known names, ``+ - * / **``, unary minus and calls to a
few known functions) and builds the sympy expression itself; anything else raises
:class:`ValueError` before any evaluation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping

import sympy

__all__ = [
    "SAFE_FUNCTIONS",
    "PYSR_OPERATORS",
    "parse_expression",
    "parse_pysr_equation",
    "julia_floats",
    "expression_complexity",
    "symbol",
]

#: Maximum length of a formula text (longer text is refused before parsing).
MAX_TEXT = 20_000
#: Largest absolute exponent accepted for a numeric power (guards against 10**10**10).
MAX_EXPONENT = 64
_MAX_INT_DIGITS = 30


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol used for a variable or parameter (no assumptions, so that every
    part of energylens builds equal symbols)."""
    return sympy.Symbol(name)


def _square(x):
    return x**2


def _cube(x):
    return x**3


def _inv(x):
    return 1 / x


def _neg(x):
    return -x


def _plus(*a):
    return sympy.Add(*a)


def _sub(a, b):
    return a - b


def _mult(*a):
    return sympy.Mul(*a)


def _div(a, b):
    return a / b


def _pow(a, b):
    return a**b


#: Functions a stored formula may call (sympy's printed names included).
SAFE_FUNCTIONS: dict[str, Callable] = {
    "log": sympy.log,
    "exp": sympy.exp,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "Abs": sympy.Abs,
}

#: PySR (SymbolicRegression.jl) operator names and their sympy meaning.
PYSR_OPERATORS: dict[str, Callable] = {
    **SAFE_FUNCTIONS,
    "square": _square,
    "cube": _cube,
    "inv": _inv,
    "neg": _neg,
    "plus": _plus,
    "add": _plus,
    "sub": _sub,
    "mult": _mult,
    "mul": _mult,
    "div": _div,
    "pow": _pow,
    "safe_pow": _pow,
    "log10": lambda x: sympy.log(x, 10),
    "log2": lambda x: sympy.log(x, 2),
    "log1p": lambda x: sympy.log(1 + x),
    "safe_log": sympy.log,
    "safe_log10": lambda x: sympy.log(x, 10),
    "safe_log2": lambda x: sympy.log(x, 2),
    "safe_sqrt": sympy.sqrt,
    "exp2": lambda x: 2**x,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "tanh": sympy.tanh,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
}

# Julia Float32 literals: 1.5f0, 2f-3. Float64 literals (2.0e-3, 1e5) are Python already.
_JULIA_F32 = re.compile(r"(?<![A-Za-z_\d.])((?:\d+\.?\d*|\.\d+))f([+-]?\d+)")


def julia_floats(text: str) -> str:
    """Rewrite Julia ``Float32`` literals (``1.5f0``, ``1f-5``) as Python floats.

    Examples
    --------
    >>> julia_floats("1.5f0 * x0 + 2f-3")
    '1.5e0 * x0 + 2e-3'
    """
    return _JULIA_F32.sub(r"\1e\2", text)


class _Builder:
    def __init__(self, names: Mapping[str, sympy.Expr], functions: Mapping[str, Callable],
                 caret_is_pow: bool):
        self.names = names
        self.functions = functions
        self.caret_is_pow = caret_is_pow

    def fail(self, node, what: str):
        raise ValueError(f"formula rejected: {what} (at column {getattr(node, 'col_offset', '?')}); "
                         "only numbers, known variable and parameter names, + - * / ** and calls "
                         f"to {sorted(self.functions)} are allowed.")

    def build(self, node):
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(node, f"constant {v!r} is not a real number")
            if isinstance(v, int):
                if len(str(abs(v))) > _MAX_INT_DIGITS:
                    self.fail(node, "integer literal too large")
                return sympy.Integer(v)
            if v != v or v in (float("inf"), float("-inf")):
                self.fail(node, "non-finite number")
            return sympy.Float(v)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                self.fail(node, f"unknown name {node.id!r} (known: {sorted(self.names)})")
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            self.fail(node, f"operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp):
            op = node.op
            if not isinstance(op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
                self.fail(node, f"operator {type(node.op).__name__}")
            a = self.build(node.left)
            b = self.build(node.right)
            if isinstance(op, ast.Add):
                return a + b
            if isinstance(op, ast.Sub):
                return a - b
            if isinstance(op, ast.Mult):
                return a * b
            if isinstance(op, ast.Div):
                return a / b
            if b.is_Number and abs(float(b)) > MAX_EXPONENT:
                self.fail(node, f"exponent {b} beyond +/-{MAX_EXPONENT}")
            if isinstance(b, sympy.Float) and float(b) == int(b):
                b = sympy.Integer(int(b))  # si**2.0 from an engine is si**2
            return a**b
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.fail(node, "call of something other than a plain function name")
            if node.keywords:
                self.fail(node, "keyword arguments")
            name = node.func.id
            if name not in self.functions:
                self.fail(node, f"call of unknown function {name!r}")
            args = []
            for a in node.args:
                if isinstance(a, ast.Starred):
                    self.fail(a, "starred arguments")
                args.append(self.build(a))
            try:
                return self.functions[name](*args)
            except TypeError as exc:
                raise ValueError(f"formula rejected: bad arguments to {name}: {exc}") from exc
        self.fail(node, f"syntax element {type(node).__name__}")


def parse_expression(
    text: str,
    names: Iterable[str] | Mapping[str, sympy.Expr],
    *,
    functions: Mapping[str, Callable] | None = None,
    caret_is_pow: bool = False,
) -> sympy.Expr:
    """Parse formula text into a sympy expression without executing any code.

    Parameters
    ----------
    text : str
        Formula in Python syntax, e.g. ``"a0*si + a1*so/B"``.
    names : iterable of str, or mapping of str to sympy expression
        Names the formula may use (variables and parameters); a mapping substitutes an
        expression for a name.
    functions : mapping, optional
        Callable names allowed (default :data:`SAFE_FUNCTIONS`: log, exp, sqrt, abs).
    caret_is_pow : bool, default=False
        Read ``^`` as a power with the precedence of ``**`` (the notation of Operon and
        Julia) instead of refusing it.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        If the text is not a formula of the allowed kind (attribute access, lambdas,
        subscripts, unknown names or functions, strings, comprehensions, ...).

    Examples
    --------
    >>> parse_expression("2*si + so/B", ["si", "so", "B"])
    2*si + so/B
    >>> parse_expression("__import__('os')", ["si"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: formula rejected: call of unknown function '__import__' ...
    """
    if not isinstance(text, str):
        raise ValueError(f"formula must be a str; got {type(text).__name__}.")
    if len(text) > MAX_TEXT:
        raise ValueError(f"formula rejected: longer than {MAX_TEXT} characters.")
    if isinstance(names, Mapping):
        table = dict(names)
    else:
        table = {n: symbol(n) for n in names}
    if caret_is_pow:
        # Julia's and Operon's ^ binds like Python's ** (tighter than * and unary minus).
        text = text.replace("^", "**")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"formula rejected: not a valid expression ({exc.msg}): {text!r}") from exc
    expr = _Builder(table, SAFE_FUNCTIONS if functions is None else functions, caret_is_pow).build(tree)
    return expr if isinstance(expr, sympy.Basic) else sympy.Integer(expr)


def parse_pysr_equation(text: str, variable_names: list[str]) -> sympy.Expr:
    """Parse one equation of PySR's ``hall_of_fame.csv`` into sympy (in our variable names).

    Handles Julia floats (``1.5f0``), ``^`` for powers, PySR's operator names
    (``square``, ``cube``, ``inv``, ``mult``, ``plus``, ``sub``, ``div``, ``neg``, ...) and
    either the given variable names or PySR's default ``x0, x1, ...``.

    Examples
    --------
    >>> parse_pysr_equation("square(x0) * 1.5f0 + inv(x1)", ["si", "B"])
    1.5*si**2 + 1/B
    """
    text = julia_floats(str(text))
    names: dict[str, sympy.Expr] = {n: symbol(n) for n in variable_names}
    for i, n in enumerate(variable_names):
        names.setdefault(f"x{i}", symbol(n))
    # PySR may print subscripted names with unicode digits: x₀.
    text = text.translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
    return parse_expression(text, names, functions=PYSR_OPERATORS, caret_is_pow=True)


def expression_complexity(expr: sympy.Expr) -> int:
    """Number of nodes of the expression tree (symbols, numbers and operators).

    Examples
    --------
    >>> import sympy
    >>> expression_complexity(sympy.Symbol("x") * 2 + 1)
    5
    """
    return 1 + sum(expression_complexity(a) for a in expr.args)
