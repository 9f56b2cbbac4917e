"""Imports only go down the layers (docs/architecture.md): spec imports nothing of ours; reference and
fast import spec only; proofs imports spec (and reference for numeric witnesses)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"spec", "reference", "fast", "proofs", "gptspec"}
ALLOWED = {
    "spec": {"spec"},
    "reference": {"spec", "reference"},
    "fast": {"spec", "fast"},
    "proofs": {"spec", "reference", "proofs"},
    "gptspec": OURS,
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_down_the_layers(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for path in files:
        bad = imported_packages(path) - ALLOWED[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, but {package}/ may import only {sorted(ALLOWED[package])}"
