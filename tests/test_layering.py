"""The layering is the folder layout: no module imports one above it, no import cycle hides behind a function-level
import, and no public name is defined twice."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fbgen"
# lowest first; a module may import its own layer and those below it
LAYERS = ["core", "families", "outputs", "config", "engine", "apps", "demo", "cli"]
MODEL_CODE = {"fbgen.demo.autoencoder"}  # the demo pair's VAE class: model code, loaded by the demo family


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> int:
    if module in MODEL_CODE:
        return LAYERS.index("families")
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # fbgen/__init__: the version
    name = parts[1]
    return LAYERS.index(name) if name in LAYERS else LAYERS.index("cli")  # __main__, cli


def imports(path: Path) -> set[str]:
    """Every fbgen module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fbgen"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fbgen"))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {i for i in imports(p) if i in known and i != m} for m, p in known.items()}


def test_no_module_imports_a_layer_above_it():
    upward = [f"{m} imports {i}" for m, deps in graph().items() for i in deps if layer(i) > layer(m)]
    assert not upward, upward


def test_no_import_cycles_even_through_function_level_imports():
    edges = graph()
    # a package's __init__ importing its own submodules is how a package is assembled, not a cycle
    edges = {m: {i for i in deps if not (i.startswith(m + ".") and modules()[m].name == "__init__.py")}
             for m, deps in edges.items()}  # fmt: skip
    state: dict[str, int] = defaultdict(int)
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state[nxt] == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt])
                return True
            if state[nxt] == 0 and visit(nxt, [*stack, nxt]):
                return True
        state[node] = 2
        return False

    for start in edges:
        if state[start] == 0 and visit(start, [start]):
            break
    assert not cycle, " -> ".join(cycle)


# families implement one interface (each its SPEC, formulas, Prompt); CLI commands are named after what they run
SAME_BY_DESIGN = {"fbgen.families.wan", "fbgen.families.ltx", "fbgen.families.demo", "fbgen.cli"}


def test_no_public_name_is_defined_twice():
    where = defaultdict(list)
    for module, path in modules().items():
        if module in SAME_BY_DESIGN:
            continue
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            for name in names:
                if not name.startswith("_") and name not in ("__all__", "main"):
                    where[name].append(module)
    twice = {n: ms for n, ms in where.items() if len(ms) > 1}
    assert not twice, twice
