"""No import cycles inside ``napari_sam2``.

Every module under ``src/napari_sam2`` is parsed (not imported); each ``import`` /
``from ... import`` of another module of the package is an edge of the module graph, wherever
it appears (top level, inside a function, under ``if TYPE_CHECKING:``), because each of them
is a dependency a reader has to follow. A cycle is a strongly connected component with more
than one module (Tarjan's algorithm).
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_sam2

SRC = Path(napari_sam2.__file__).resolve().parent
PACKAGE = "napari_sam2"

#: Known cycles, each a sorted tuple of module names, with the reason it is still there. A cycle
#: not listed here fails the test; an entry that no longer is a cycle fails it too.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute names ``node`` may refer to (a module, or a module's attribute)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def module_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module name -> names of the package's modules it imports."""
    paths = {_module_name(p): p for p in sorted(src.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps.update(
                    name
                    for name in _imported(node, module, is_package)
                    if name in paths and name != module
                )
        graph[module] = deps
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Components of more than one node (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(tuple(sorted(component)))
    return sorted(found)


def test_tarjan_finds_cycles_and_only_cycles():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": {"e"},
        "e": {"d"},
        "f": {"a"},
        "g": set(),
    }
    assert strongly_connected(graph) == [("a", "b", "c"), ("d", "e")]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_graph_sees_relative_absolute_and_lazy_imports():
    graph = module_graph()
    assert f"{PACKAGE}.video.memory_settings" in graph[f"{PACKAGE}.video.memory_bank"]
    assert f"{PACKAGE}.weights.registry" in graph[f"{PACKAGE}.weights.download"]
    # lazy (inside a function): the session imports seeding only when seeding is used
    assert f"{PACKAGE}.video.seeding" in graph[f"{PACKAGE}.video.session"]
    assert len(graph) > 50


def test_no_import_cycles_in_the_package():
    cycles = strongly_connected(module_graph())
    unexpected = [c for c in cycles if c not in ALLOWED_CYCLES]
    assert unexpected == [], (
        "import cycle(s) inside napari_sam2: "
        + "; ".join(" <-> ".join(c) for c in unexpected)
        + ". Move what both modules need into a third module, or pass it as an argument."
    )
    gone = [c for c in ALLOWED_CYCLES if c not in cycles]
    assert gone == [], f"no longer a cycle, remove from ALLOWED_CYCLES: {gone}"
