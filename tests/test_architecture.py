"""The shape of src/sweep, read from its own imports with ast: no import cycle between modules or between
subpackages, imports that point down the stages only, MLflow and the Optuna storage at the edge, modules small
enough to own one thing (<= 300 lines, none packed to get there: no line over ruff's 120 characters, no two
statements on one line). `python tests/test_architecture.py` prints both graphs and what each check finds."""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sweep"
# Lowest first: a module imports its own layer and the layers before it, never one after it. The edge holds
# config, tracking, the process's caches (memo) and the package's __version__; bench runs commands as a user
# does, through cli.main.
LAYERS = ("edge", "data", "models", "search", "report", "serve", "cli", "bench")
TOP = {
    "__init__": "edge",
    "allocator": "edge",
    "config": "edge",
    "determinism": "edge",
    "environment": "edge",
    "files": "edge",
    "memo": "edge",
    "retry": "edge",
    "schema": "edge",  # the config's typed schema: config validates against it
    "tracking": "edge",
    "cli": "cli",
    "__main__": "cli",
}
EDGE = {
    "allocator": set(),
    "config": {"memo", "schema.*"},
    "determinism": set(),
    "environment": {"__init__", "memo"},
    "files": set(),
    "memo": set(),
    "retry": set(),
    "tracking": {"environment", "files", "memo", "retry"},
    "schema.*": {"schema.*"},
    "search.journal": {"config"},
    "search.storage": {"config", "retry", "search.journal", "tracking"},
}  # all they import
MAX_LINES = 300
MAX_WIDTH = 120  # ruff's line-length (pyproject.toml): a module under MAX_LINES by wide lines is packed


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module by its dotted name under the package: `models.head`; a subpackage's __init__.py is the
    subpackage itself (`models`), the package's own is `__init__`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        out[".".join(parts)] = path
    return out


def sweep_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that one module imports, at module level or inside a function, absolute or
    relative: `from sweep.models import head` imports `models.head`; a name that is no module (`from sweep
    import __version__`, `from sweep.models import X`) imports the package it is taken from."""
    if name == "__init__":
        package = []  # the package's own __init__.py
    else:  # the package a relative import starts from: a subpackage's __init__.py is in its own package
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def resolve(dotted: list[str]) -> str:
        return ".".join(dotted) or "__init__"

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sweep":
                    found.add(resolve(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = [*base, *filter(None, (node.module or "").split("."))]
            elif (node.module or "").split(".")[0] == "sweep":
                parts = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                sub = resolve([*parts, alias.name])
                found.add(sub if sub in known else resolve(parts))
    found.discard(name)
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: sweep_imports(name, path, set(mods)) for name, path in mods.items()}


def group(module: str) -> str:
    """The subpackage a module belongs to, or the module itself at the top (`config`, `cli`)."""
    return module.split(".")[0]


def subpackage_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(group(a), set()).update(group(b) for b in targets if group(b) != group(a))
    return out


def layer(module: str) -> str | None:
    """A top-level module's layer from TOP; a subpackage is the layer of its own name; else None."""
    g = group(module)
    return TOP[g] if g in TOP else g if g in LAYERS else None


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer into a higher one: (importer, imported)."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(
        (a, b)
        for a, targets in edges.items()
        for b in targets
        if layer(a) in rank and layer(b) in rank and rank[layer(a)] < rank[layer(b)]
    )


def unplaced(edges: dict[str, set[str]]) -> list[str]:
    """Modules in no declared layer: a new subpackage or top-level module must be given its place in LAYERS."""
    return sorted({m for a, targets in edges.items() for m in (a, *targets) if layer(m) is None})


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of nodes (Tarjan), as a path a -> b -> ... -> a."""
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
            members = set()
            while True:
                w = stack.pop()
                members.add(w)
                if w == v:
                    break
            if len(members) > 1:
                groups.append(members)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_path_through(sorted(g)[0], g, edges) for g in groups]


def _path_through(start: str, members: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest import path from start back to start, inside the strongly connected group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, set()) & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return [start]


def _matches(module: str, names: set[str]) -> bool:
    """`module` is one of names, or inside a package named there as `package.*`."""
    return module in names or any(n.endswith(".*") and module.startswith(n[:-1]) for n in names)


def edge_imports_above(edges: dict[str, set[str]]) -> dict[str, list[str]]:
    """What config, tracking, the schema and the Optuna storage import beyond what the edge may."""
    found = {}
    for m, targets in sorted(edges.items()):
        rules = [allowed for name, allowed in EDGE.items() if _matches(m, {name})]
        if rules and (extra := sorted(t for t in targets if not _matches(t, rules[0]))):
            found[m] = extra
    return found


def busy_inits(mods: dict[str, Path], edges: dict[str, set[str]]) -> list[str]:
    """Stage subpackages' __init__.py files (data, models, ...) that import from the package: they re-export
    nothing, so that importing one module never loads its siblings (bench/gpu.py runs where Hydra is not
    installed). A package nested in a stage (models/finetune/) is one module split by job: its __init__.py
    is its public face and re-exports what its modules define."""
    stages = {m: path for m, path in mods.items() if path.name == "__init__.py" and m != "__init__" and "." not in m}
    return sorted(m for m in stages if edges.get(m))


def mlflow_importers(mods: dict[str, Path]) -> list[str]:
    found = set()
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if name != "tracking" and any(n.split(".")[0] == "mlflow" for n in names):
                found.add(name)
    return sorted(found)


def long_modules(mods: dict[str, Path]) -> dict[str, int]:
    """Modules over MAX_LINES, every one (the GPU path too), by line count."""
    return {name: n for name, path in mods.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}


def packed_lines(mods: dict[str, Path]) -> dict[str, list[str]]:
    """Lines that hold more than a line's worth: wider than MAX_WIDTH, statements joined by `;`, or a
    statement after the colon of `if` / `for` / `def` / ... (a `;` or `:` inside a string is no statement)."""
    found: dict[str, list[str]] = {}
    for name, path in mods.items():
        text = path.read_text()
        where = [f"{i}: {len(line)} characters" for i, line in enumerate(text.splitlines(), 1) if len(line) > MAX_WIDTH]
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        where += [f"{t.start[0]}: `;`" for t in tokens if t.type == tokenize.OP and t.string == ";"]
        for node in ast.walk(ast.parse(text)):
            body = getattr(node, "body", None)
            if isinstance(node, ast.stmt) and isinstance(body, list) and body and body[0].lineno == node.lineno:
                where.append(f"{node.lineno}: {type(node).__name__.lower()} and its body on one line")
        if where:
            found[name] = where
    return found


def bare_modules(mods: dict[str, Path]) -> list[str]:
    return [
        name for name, path in mods.items() if name != "__main__" and not ast.get_docstring(ast.parse(path.read_text()))
    ]


# the package as it is


def test_no_import_cycle_between_modules():
    found = cycles(graph())
    assert not found, "import cycles in src/sweep: " + "; ".join(" -> ".join(c) for c in found)


def test_no_import_cycle_between_subpackages():
    found = cycles(subpackage_graph(graph()))
    assert not found, "subpackages importing each other: " + "; ".join(" -> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    edges = graph()
    assert not unplaced(edges), f"modules in no layer (add them to LAYERS / TOP): {unplaced(edges)}"
    found = upward(edges)
    assert not found, f"imports up the layers {' < '.join(LAYERS)}: " + ", ".join(f"{a} -> {b}" for a, b in found)


def test_tracking_config_and_storage_sit_at_the_edge():
    assert not (found := edge_imports_above(graph())), f"edge modules importing modules above them: {found}"
    assert not (found := mlflow_importers(modules())), f"only tracking.py imports mlflow; also: {found}"


def test_subpackages_re_export_nothing():
    assert not (found := busy_inits(modules(), graph())), f"__init__.py files that import modules: {found}"


def test_no_module_over_300_lines():
    assert not (found := long_modules(modules())), f"modules over {MAX_LINES} lines (split by concern): {found}"


def test_no_module_is_packed_into_fewer_lines():
    assert not (found := packed_lines(modules())), f"packed lines (one statement a line, <= {MAX_WIDTH}): {found}"


def test_every_module_opens_with_a_docstring_saying_what_it_owns():
    assert not (found := bare_modules(modules())), f"modules without a docstring: {found}"


def test_the_package_is_read_whole():
    """The graph sees every stage, nested modules included (a glob that missed them would pass everything)."""
    edges = graph()
    assert {"data", "models", "search", "report", "serve", "bench"} <= set(subpackage_graph(edges))
    assert "models.losses" in edges["models.train"] and "data.splits" in edges["models.train"]


# each check on a package made to fail it


def fake_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_imports_are_read_absolute_relative_nested_and_inside_functions(tmp_path):
    pkg = fake_package(
        tmp_path,
        {
            "__init__.py": '"""."""\n__version__ = "0"\n',
            "config.py": "from sweep import __version__\n",
            "data/__init__.py": "",
            "data/splits.py": "def f():\n    from sweep.models import head\n",
            "data/features.py": "from .splits import f\nfrom . import splits\n",
            "models/__init__.py": "X = 1\n",
            "models/head.py": "import sweep.data.features\nfrom sweep.models import X\nfrom ..data.splits import f\n",
        },
    )
    assert graph(pkg) == {
        "__init__": set(),
        "config": {"__init__"},
        "data": set(),
        "data.splits": {"models.head"},
        "data.features": {"data.splits"},
        "models": set(),
        "models.head": {"data.features", "models", "data.splits"},
    }


def test_a_cycle_between_modules_is_found(tmp_path):
    pkg = fake_package(
        tmp_path,
        {"a.py": "from sweep.b import x\n", "b.py": "def f():\n    from sweep import a\n", "c.py": "import sweep.a\n"},
    )
    assert graph(pkg) == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph(pkg)) == [["a", "b", "a"]]


def test_a_cycle_between_subpackages_is_found_where_modules_have_none():
    edges = {"data.features": {"models.finetune"}, "models.finetune": {"data.encoders"}, "data.encoders": set()}
    assert cycles(edges) == []
    assert cycles(subpackage_graph(edges)) == [["data", "models", "data"]]


def test_an_upward_import_and_a_module_in_no_layer_are_found():
    edges = {
        "search.study": {"report.table", "models.train", "config"},
        "report.table": {"search.pareto"},
        "bench.cost": {"cli"},
        "cli": {"search.study"},
        "plugins.x": {"data.splits"},
    }
    assert upward(edges) == [("search.study", "report.table")]
    assert unplaced(edges) == ["plugins.x"]
    assert upward({"tracking": {"data.splits"}}) == [("tracking", "data.splits")]


def test_edge_and_init_checks_find_what_they_forbid(tmp_path):
    pkg = fake_package(
        tmp_path,
        {
            "__init__.py": '"""."""\n',
            "config.py": '"""."""\n',
            "tracking.py": '"""."""\nimport mlflow\n',
            "search/__init__.py": '"""."""\nfrom sweep.search.storage import open_storage\n',
            "search/storage.py": '"""."""\nfrom sweep.config import x\nfrom sweep.search import study\n',
            "search/study.py": '"""."""\ndef f():\n    from mlflow import MlflowClient\n',
            "schema/__init__.py": '"""."""\n',
            "schema/build.py": '"""."""\nfrom sweep.schema import data\nfrom sweep.search import study\n',
            "schema/data.py": '"""."""\n',
            "search/loop/__init__.py": '"""."""\nfrom sweep.search.loop.step import step\n',
            "search/loop/step.py": '"""."""\ndef step():\n    pass\n',
        },
    )
    mods, edges = modules(pkg), graph(pkg)
    assert edge_imports_above(edges) == {"schema.build": ["search.study"], "search.storage": ["search.study"]}
    assert busy_inits(mods, edges) == ["search"]
    assert mlflow_importers(mods) == ["search.study"]


def test_long_and_undocumented_modules_are_found(tmp_path):
    pkg = fake_package(
        tmp_path,
        {
            "__main__.py": "",
            "a.py": '"""A."""\n' + "x = 1\n" * MAX_LINES,
            "models/__init__.py": '"""Models."""\n',
            "models/finetune.py": "y = 1\n" * 400,
            "models/head.py": "# no docstring\n",
        },
    )
    mods = modules(pkg)
    assert long_modules(mods) == {"a": MAX_LINES + 1, "models.finetune": 400}  # the GPU path too
    assert bare_modules(mods) == ["models.finetune", "models.head"]


def test_packed_lines_are_found_and_strings_are_not(tmp_path):
    pkg = fake_package(
        tmp_path,
        {
            "a.py": 'x = 1; y = 2\nif x: y = 3\ns = "a; b: c"\nt = "' + "z" * MAX_WIDTH + '"\n',
            "b.py": 'def f():\n    return "one; line"  # a comment; with a semicolon\n',
        },
    )
    assert packed_lines(modules(pkg)) == {
        "a": [f"4: {MAX_WIDTH + 6} characters", "1: `;`", "2: if and its body on one line"]
    }


def print_graph(edges: dict[str, set[str]]) -> None:
    print("modules (importer -> imported):")
    for name in sorted(edges, key=lambda m: (LAYERS.index(layer(m)) if layer(m) in LAYERS else len(LAYERS), m)):
        print(f"  {name:18s} -> {', '.join(sorted(edges[name])) or '(nothing)'}")
    print(f"\nsubpackages, layers lowest first ({' < '.join(LAYERS)}):")
    packages = subpackage_graph(edges)
    for name in sorted(packages, key=lambda g: (LAYERS.index(layer(g)) if layer(g) in LAYERS else len(LAYERS), g)):
        print(f"  {name:10s} [{layer(name) or 'no layer'}] -> {', '.join(sorted(packages[name])) or '(nothing)'}")


if __name__ == "__main__":
    edges, mods = graph(), modules()
    print_graph(edges)
    problems = {
        "cycles between modules": [" -> ".join(c) for c in cycles(edges)],
        "cycles between subpackages": [" -> ".join(c) for c in cycles(subpackage_graph(edges))],
        "imports up the layers": [f"{a} -> {b}" for a, b in upward(edges)],
        "modules in no layer": unplaced(edges),
        "edge modules importing above it": [f"{m} -> {', '.join(x)}" for m, x in edge_imports_above(edges).items()],
        "importers of mlflow besides tracking": mlflow_importers(mods),
        "__init__.py files importing modules": busy_inits(mods, edges),
        f"modules over {MAX_LINES} lines": [f"{m} ({n})" for m, n in long_modules(mods).items()],
        "packed lines": [f"{m} ({', '.join(where)})" for m, where in packed_lines(mods).items()],
        "modules without a docstring": bare_modules(mods),
    }
    print()
    for what, found in problems.items():
        print(f"{what}: {'; '.join(found) if found else 'none'}")
    sys.exit(1 if any(problems.values()) else 0)
