"""skcream has no import cycles, lazy (function-level) imports included.

The import graph is built from the source with ``ast`` (nothing is imported): an edge
``a -> b`` for every ``import skcream...`` / ``from ... import ...`` anywhere in module
``a`` (top level, inside functions, under ``TYPE_CHECKING``), where ``b`` is the most
specific skcream module the statement names (``from skcream.x import y`` is ``skcream.x.y``
when that is a module, else ``skcream.x``). Importing a submodule does not count as
importing its parent package's ``__init__`` (as in import-linter / pydeps), otherwise every
module would depend on ``skcream/__init__.py``. Any strongly connected component with more
than one module is a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import skcream
from skcream.estimators import feature_reactivation
from skcream.estimators import reactivation as old_path

ROOT = Path(skcream.__file__).resolve().parent


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every ``.py`` under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Edges between the modules of the package at ``root`` (see the module docstring)."""
    top = root.name
    modules = _modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                targets = [f"{full}.{a.name}" if f"{full}.{a.name}" in modules else full
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target == top or target.startswith(top + "."):
                    resolved = resolve(target)
                    if resolved is not None and resolved != name:
                        deps.add(resolved)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_skcream_has_no_import_cycle():
    graph = import_graph(ROOT)
    assert len(graph) > 50  # the whole package was read
    assert "skcream.estimators.localizer._estimator" in graph["skcream.estimators.localizer"]
    assert cycles(graph) == []


def test_the_check_finds_lazy_and_relative_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import c\n")  # lazy
    (pkg / "c.py").write_text("from .sub import d\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("def g():\n    from ..a import x\n")  # relative, lazy
    (pkg / "e.py").write_text("import pkg.a\n")  # into the cycle, not part of it
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.sub.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"]]
    (pkg / "b.py").write_text("def f():\n    pass\n")
    assert cycles(import_graph(pkg)) == []


def test_old_reactivation_path_is_an_alias():
    for name in old_path.__all__:
        assert getattr(old_path, name) is getattr(feature_reactivation, name)
    assert skcream.CREAMReactivation is feature_reactivation.CREAMReactivation
