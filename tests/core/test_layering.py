"""Arrows point one way: a package never imports one above it (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# package -> the top-level packages of this repository it must never import
FORBIDDEN = {
    "models": {"percolate", "workflows", "synth", "jobs", "dags", "expectations"},
    "expectations": {"percolate", "workflows", "synth", "jobs", "dags", "models"},
    "percolate": {"workflows", "synth", "jobs", "dags"},
    "synth": {"workflows", "jobs", "dags", "models", "expectations"},
    "jobs": {"workflows", "synth", "dags"},
    "dags": {"workflows", "synth", "jobs"},
}
CORE_FORBIDDEN = {"percolate.io", "percolate.video", "percolate.transforms", "percolate.inference",
                  "percolate.handover", "percolate.report"}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package):
    wrong = [f"{path.relative_to(REPO)} imports {name}" for path in sorted((REPO / package).rglob("*.py"))
             for name in imports(path) if name.split(".")[0] in FORBIDDEN[package]]
    assert not wrong, wrong


def test_core_imports_nothing_else_of_percolate():
    wrong = [f"{path.relative_to(REPO)} imports {name}" for path in sorted((REPO / "percolate" / "core").rglob("*.py"))
             for name in imports(path) if any(name == m or name.startswith(m + ".") for m in CORE_FORBIDDEN)]
    assert not wrong, wrong
