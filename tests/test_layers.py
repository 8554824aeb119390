"""The package's layers: every import points down, and nothing imports in a circle.

The layers and their folders are the map at the top of docs/architecture.md;
``LAYERS`` below is that map as data. The graph is read from the source with
``ast``: module-level imports, imports inside functions (they run too, only
later) and ``TYPE_CHECKING`` imports (for the layering only: they never run,
so they cannot close a cycle at run time).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("relier", "relier_fastapi", "relier_flask", "relier_django")

# Bottom to top. A module belongs to the first entry whose prefix names it (or one of
# its parents); it may import modules of its own layer and of the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("relier.errors", "relier.config", "relier.clock")),
    ("journal", ("relier.journal",)),
    ("hub", ("relier.hub", "relier.registry", "relier.context")),
    ("telemetry", ("relier.telemetry",)),
    ("worker", ("relier.worker",)),
    ("tasks", ("relier.tasks",)),
    ("ops", ("relier.ops",)),
    (
        "tools",
        (
            "relier.localredis",
            "relier.chaos",
            "relier.demo",
            "relier.cli",
            "relier.testing",
            "relier.__main__",
        ),
    ),
    ("facade", ("relier",)),
    ("adapters", ("relier_fastapi", "relier_flask", "relier_django")),
]


@dataclass
class Module:
    name: str
    path: Path
    # (imported module, line, kind) with kind "top", "lazy" or "typing"
    imports: list[tuple[str, int, str]] = field(default_factory=list)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _graph() -> dict[str, Module]:
    paths = _modules()
    graph = {name: Module(name, path) for name, path in paths.items()}

    def target(name: str) -> str | None:
        while name and name not in paths:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name or None

    for module in graph.values():
        is_package = module.path.name == "__init__.py"

        def record(
            node: ast.Import | ast.ImportFrom,
            kind: str,
            module: Module = module,
            is_package: bool = is_package,
        ) -> None:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = module.name.split(".")
                if node.level:
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    names.append(full if full in paths else source)
            for name in names:
                found = target(name)
                if found is not None and found != module.name:
                    module.imports.append((found, node.lineno, kind))

        def walk(node: ast.AST, in_function: bool, typing_only: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child.test):
                    for inner in child.body:
                        walk_one(inner, in_function, True)
                    for inner in child.orelse:
                        walk_one(inner, in_function, typing_only)
                    continue
                walk_one(child, in_function, typing_only)

        def walk_one(node: ast.AST, in_function: bool, typing_only: bool) -> None:
            if isinstance(node, ast.Import | ast.ImportFrom):
                kind = "typing" if typing_only else ("lazy" if in_function else "top")
                record(node, kind)
                return
            inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            walk(node, inside, typing_only)

        walk(ast.parse(module.path.read_text(encoding="utf-8")), False, False)
    return graph


def layer_of(name: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                candidate = (len(prefix), index)
                if best is None or candidate > best:
                    best = candidate
    assert best is not None, f"{name} is in no layer of tests/test_layers.py: add it to LAYERS"
    return best[1]


GRAPH = _graph()


def test_every_module_is_in_a_layer() -> None:
    for name in GRAPH:
        layer_of(name)


def test_every_import_points_down_or_sideways() -> None:
    upward = []
    for module in GRAPH.values():
        mine = layer_of(module.name)
        for imported, line, kind in module.imports:
            theirs = layer_of(imported)
            if theirs > mine:
                upward.append(
                    f"{module.path.relative_to(ROOT)}:{line} ({LAYERS[mine][0]}) imports "
                    f"{imported} ({LAYERS[theirs][0]}), {kind}"
                )
    assert upward == [], "imports that point up a layer:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_at_run_time() -> None:
    edges = {
        m.name: {imported for imported, _, kind in m.imports if kind != "typing"}
        for m in GRAPH.values()
    }
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["relier_fastapi", "relier_flask", "relier_django"])
def test_adapters_never_import_the_worker_runtime(package: str) -> None:
    # A web process must not carry worker machinery (signal handlers, kombu patches).
    bad = [
        f"{m.name} imports {imported}"
        for m in GRAPH.values()
        if m.name.startswith(package)
        for imported, _, _ in m.imports
        if imported.startswith("relier.worker")
    ]
    assert bad == []


def test_the_architecture_map_names_every_module_and_only_real_ones() -> None:
    # docs/architecture.md opens with the map; a module it does not name is one a
    # newcomer cannot place, a name it gives that does not exist is a stale map.
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    the_map = text[: text.index("\n## ", text.index("## The map") + 1)]
    missing = []
    for module in GRAPH.values():
        relative = module.path.relative_to(ROOT)
        if relative.parts[0] != "relier":
            continue
        folder = f"`{relative.parent.as_posix()}/`"
        named = (
            f"`{relative.as_posix()}`" in the_map
            or (folder in the_map and f"`{relative.name}`" in the_map)
            or (folder in the_map and f"`{relative.stem}`" in the_map)
            or (relative.name == "__init__.py" and folder in the_map)
            or (len(relative.parts) > 2 and f"`{relative.parts[-2]}/{relative.name}`" in the_map)
        )
        if not named:
            missing.append(relative.as_posix())
    assert missing == [], f"modules docs/architecture.md's map does not name: {missing}"
    stale = [
        path
        for path in re.findall(r"`(relier[\w/]*(?:\.py|/))`", the_map)
        if not (ROOT / path).exists()
    ]
    assert stale == [], f"paths in docs/architecture.md's map that do not exist: {stale}"


# Folders of tests that cut across layers (one per script, real processes, frameworks, speed).
LANES = {"lua", "integration", "chaos", "adapters", "bench"}
# Test files of a folder that are not named for one module.
KNOWN_WHOLE = {"test_envelope_properties", "test_redis_full", "test_telemetry"}


def test_the_unit_tests_mirror_the_package_folders() -> None:
    """tests/<folder>/ is either a lane or the tests of relier/<folder>/."""
    tests = ROOT / "tests"
    for folder in sorted(p for p in tests.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        relative = folder.relative_to(tests)
        if relative.parts[0] in LANES:
            continue
        source = ROOT / "relier" / relative
        assert source.is_dir(), f"tests/{relative}/ mirrors no folder of relier/ (is it a lane?)"
        for test in folder.glob("test_*.py"):
            # A file named for a module tests that module; others test the folder as a whole.
            module = source / f"{test.stem.removeprefix('test_')}.py"
            assert module.exists() or test.stem in KNOWN_WHOLE, f"{test} names no module"
