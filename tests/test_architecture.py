"""The shape of src/sweep, read from its own imports with ast: no import cycle, modules small enough to own one
thing, MLflow and the Optuna storage at the edge. `python tests/test_architecture.py` prints the graph."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sweep"
MAX_LINES = 300
LONG_ALLOWED = {"finetune.py", "bench_gpu.py"}  # the GPU fine-tuning path and its benchmark
EDGE = {"config": set(), "tracking": {"__init__"}, "storage": {"config", "tracking"}}  # what the edge may import


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE.glob("*.py"))}


def sweep_imports(path: Path, known: set[str]) -> dict[str, set[str]]:
    """Every `sweep.*` import of a file, module-level or inside a function: imported module -> what it imports
    (a name taken from the package itself, e.g. `from sweep import __version__`, counts as __init__)."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sweep":
                    found.setdefault(parts[1] if len(parts) > 1 else "__init__", set())
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            parts = ["sweep", *filter(None, module.split("."))] if node.level else module.split(".")
            if parts[0] != "sweep":
                continue
            if len(parts) > 1:
                found.setdefault(parts[1], set()).update(a.name for a in node.names)
            else:  # from sweep import x: a module if there is one, else a name of __init__
                for alias in node.names:
                    found.setdefault(alias.name if alias.name in known else "__init__", set()).add(alias.name)
    found.pop(path.stem, None)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: set(sweep_imports(path, set(mods))) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), as a path a -> b -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_path_through(sorted(g)[0], g, edges) for g in groups]


def _path_through(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest import path from start back to start, inside the group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, set()) & group):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles in src/sweep: " + "; ".join(" -> ".join(c) for c in found)


def test_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("from sweep.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from sweep import a\n")
    (tmp_path / "c.py").write_text("import sweep.a\n")
    known = {"a", "b", "c"}
    edges = {p.stem: set(sweep_imports(p, known)) for p in tmp_path.glob("*.py")}
    assert edges == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(edges) == [["a", "b", "a"]]


def test_no_module_over_300_lines():
    long = {name: n for name, path in modules().items()
            if path.name not in LONG_ALLOWED and (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split by concern): {long}"


def test_every_module_opens_with_a_docstring_saying_what_it_owns():
    bare = [name for name, path in modules().items()
            if name != "__main__" and not ast.get_docstring(ast.parse(path.read_text()))]
    assert not bare, f"modules without a docstring: {bare}"


def test_tracking_and_storage_sit_at_the_edge():
    edges = graph()
    above = {m: sorted(extra) for m, allowed in EDGE.items() if (extra := edges.get(m, set()) - allowed)}
    assert not above, f"edge modules importing modules above them: {above}"
    mlflow = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if name != "tracking" and any(n.split(".")[0] == "mlflow" for n in names):
                mlflow.append(name)
    assert not mlflow, f"only tracking.py imports mlflow; also: {sorted(set(mlflow))}"


if __name__ == "__main__":
    edges = graph()
    for name in sorted(edges):
        print(f"{name:12s} -> {', '.join(sorted(edges[name])) or '(nothing)'}")
    found = cycles(edges)
    print("cycles: " + ("; ".join(" -> ".join(c) for c in found) if found else "none"))
    sys.exit(1 if found else 0)
