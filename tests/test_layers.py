"""The package's shape. Its layers, as the README's architecture section draws them: every import
(at module level, inside a function, or for type checking only) goes to the same layer or one
below, and no two modules import each other, directly or around a circle. And no long function."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "mixtune"

LAYERS = [  # bottom first: a part may import its own layer and those below it
    ["errors"],
    ["io", "lock", "schema", "progress", "tables", "records", "distributed", "executors",
     "call_task", "provenance"],
    ["data"],
    ["model"],
    ["mixing", "regmix"],
    ["process", "eval"],
    ["synthetic", "train"],
    ["report", "leaderboard"],
    ["pipeline"],
    ["demo", "configs", "docs", "hf", "cli", "__init__", "__main__"],
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The mixtune modules `path` imports, wherever the import statement stands
    (`from mixtune.report import downstream` imports the module downstream, not the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mixtune"):
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                      else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mixtune")}
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    modules = {module_of(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imports(p, set(modules)) if i in modules and i != m}
            for m, p in modules.items()}


def test_every_part_has_a_layer():
    parts = {part_of(m) for m in graph()}
    assert parts == set(LAYER), f"add to LAYERS (and the README): {parts ^ set(LAYER)}"


def test_no_import_runs_up_a_layer():
    upward = sorted(
        f"{m} -> {i}" for m, targets in graph().items() for i in targets
        if LAYER[part_of(i)] > LAYER[part_of(m)]
    )
    assert upward == []


def test_no_import_circle():
    g = graph()
    circles, state = [], {}

    def visit(m, path):  # depth-first search; a grey module met again closes a circle
        state[m] = "grey"
        for n in sorted(g[m]):
            if state.get(n) == "grey":
                circles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "black"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_no_function_over_60_lines():
    """Short functions read top to bottom (the training loop included)."""
    long = [f"{p.relative_to(PACKAGE.parent)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in sorted(PACKAGE.rglob("*.py")) for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []
