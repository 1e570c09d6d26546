"""No import circles between the product's modules, deferred imports included.

A circle through an import inside a function still ties the two modules together: each
needs the other to be read, and neither can be understood or tested alone. Package
`__init__` files that re-export their submodules are not circles (`from . import mel`
names the submodule, not the package).
"""

import ast

from glasses_firmware.layout import source_files
from tests.conftest import ROOT

PREFIX = "glasses_firmware."


def _module_names() -> dict[str, str]:
    """dotted name -> path relative to the repository, for every product module."""
    names = {}
    for path in source_files(ROOT):
        rel = path.as_posix()
        if rel.startswith("glasses_firmware/") or not rel.endswith(".py"):
            continue                # the import root itself only maps the folders
        name = rel[:-3].replace("/", ".")
        names[name.removesuffix(".__init__")] = rel
    return names


def _imports(name: str, rel: str, known: dict[str, str]) -> set[str]:
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
    package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            targets = subs if any(s.removeprefix(PREFIX) in known for s in subs) else [base]
        else:
            continue
        for target in targets:
            target = target.removeprefix(PREFIX)
            if target in known and target != name:
                found.add(target)
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle_between_product_modules():
    known = _module_names()
    assert "firmware.app" in known and "models.manifest" in known
    graph = {name: _imports(name, rel, known) for name, rel in known.items()}
    assert "firmware.voice.assistant" in graph["firmware.app"]     # the walk sees imports
    assert _circles(graph) == []


def test_the_check_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
