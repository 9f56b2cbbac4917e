"""The library's import graph has no cycle (a cycle makes what a module sees depend on which
module was imported first; the one found, proofs.core → proofs.theorems → proofs.core, is why
the runner lives in proofs/runner.py).

Every import counts, at module level or inside a function. The one edge left out is a module
importing a package that contains it (``from spec import dims`` inside spec/ops/): the package's
``__init__`` re-exporting its own modules is the usual shape, not a cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spec", "reference", "fast", "proofs", "gptspec")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Every dotted name ``path`` (module ``name``) imports, relative imports resolved; for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a module)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(found)
    for name, path in found.items():
        for target in imported(name, path):
            own_package = found.get(target, Path()).name == "__init__.py" and name.startswith(target + ".")
            if target in found and target != name and not own_package:
                graph.add_edge(name, target)
    return graph


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert graph.number_of_edges() > 200, "the graph lost its edges: the scan is broken, not the code clean"
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles: " + "; ".join(" → ".join([*c, c[0]]) for c in sorted(cycles)[:5])


def test_the_scan_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    import b\n")
    (tmp_path / "b.py").write_text("from a import f\n")
    graph = nx.DiGraph()
    for name in ("a", "b"):
        for target in imported(name, tmp_path / f"{name}.py"):
            if target in ("a", "b") and target != name:
                graph.add_edge(name, target)
    assert list(nx.simple_cycles(graph)) == [["a", "b"]] or list(nx.simple_cycles(graph)) == [["b", "a"]]


ALLOWED = {"spec": {"spec"}, "reference": {"spec", "reference"}, "fast": {"spec", "fast"}}
"""The layers: spec/ imports nothing of ours; reference/ and fast/ import spec/ only (and themselves)."""


def test_the_layers_import_only_what_they_may() -> None:
    graph = import_graph()
    wrong = [(a, b) for a, b in graph.edges if a.split(".")[0] in ALLOWED and b.split(".")[0] not in ALLOWED[a.split(".")[0]]]
    assert not wrong, f"imports across layers: {wrong[:5]}"
