"""The package's shape: layers import only downwards, no import cycles, small modules.

Data flows one way (``docs/architecture.md``): core concepts, then tables, then
simulation and profiling, models, discovery, evaluation, selection, plots, the report and
the command line. Every ``import`` in the package, including those inside functions, is
checked against that order; a module may import from its own layer or a lower one.
Function length counts the lines of code after the docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "energylens"

#: Layer of each top-level module or subpackage (lower layers never import higher ones).
LAYERS: dict[str, int] = {
    "_version": 0, "exceptions": 0, "_optional": 0,
    "core": 1, "datasets": 1,
    "tables": 2, "schema": 2, "readers": 2,
    "simulate": 3, "profile": 3,
    "models": 4,
    "discovery": 5,
    "evaluation": 6,
    "selection": 7,
    "plot": 8,
    "report": 9,
    "cli": 10, "__main__": 10,
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_BASE_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Fully qualified energylens modules an import statement loads."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("energylens")]
    if node.level:
        base = module.split(".")
        if not is_pkg:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("energylens"):
        return []
    for a in node.names:
        sub = f"{target}.{a.name}"
        names.append(sub if sub in MODULES else target)
    return names


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in skip:
                deps.update(_resolve(mod, path.name == "__init__.py", node))
        graph[mod] = {d for d in deps if d != mod}
    return graph


GRAPH = _imports()


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) == 1:
        return None  # the top-level package: a lazy face over every layer
    return LAYERS.get(parts[1])


def test_every_module_has_a_layer():
    unknown = sorted(m for m in MODULES if m != "energylens" and _layer(m) is None)
    assert not unknown, f"modules without a layer in LAYERS: {unknown}"


def test_imports_go_downwards():
    bad = []
    for mod, deps in GRAPH.items():
        lm = _layer(mod)
        if lm is None:
            continue
        for d in deps:
            ld = _layer(d)
            if d == "energylens" or (ld is not None and ld > lm):
                bad.append(f"{mod} (layer {lm}) imports {d} (layer {ld})")
    assert not bad, "imports from a higher layer:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    # A package's __init__ re-exporting its own submodules is not a cycle of meaning.
    def edges(m):
        return {d for d in GRAPH.get(m, ()) if not (m.startswith(d + ".") or d.startswith(m + "."))}

    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in edges(m):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _function_lengths(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                body = body[1:]
            if body:
                yield node.name, node.lineno, body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_module_and_function_sizes(mod):
    path = MODULES[mod]
    n = len(path.read_text().splitlines())
    if mod == "energylens.models.base":  # the issue: "under 450 lines"
        assert n < MAX_BASE_LINES, f"{path} has {n} lines (must be under {MAX_BASE_LINES})"
    assert n <= MAX_MODULE_LINES, f"{path} has {n} lines (limit {MAX_MODULE_LINES})"
    long = [f"{name} (line {line}): {length} lines" for name, line, length in _function_lengths(path)
            if length > MAX_FUNCTION_LINES]
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines of code: {long}"
