"""The package layout follows the data flow (docs/architecture.md): no stage imports a later one."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "orchestrator"

# Stages in data-flow order; shared services first, the CLI last.
ORDER = [
    "errors",
    "display",
    "nixstr",
    "tables",
    "formats",
    "nixcli",
    "gitcli",
    "upstream",
    "stage0",
    "generate",
    "bridge",
    "build",
    "verify",
    "maintain",
    "commands",
    "cli",
    "clidoc",
]
RANK = {name: i for i, name in enumerate(ORDER)}


def _stage(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imported_stages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "orchestrator":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "orchestrator" and len(parts) > 1:
                    found.add(parts[1])
    return found & RANK.keys()


def test_every_module_belongs_to_a_stage() -> None:
    modules = [
        p
        for p in PACKAGE.rglob("*.py")
        if p.parent != PACKAGE or p.stem not in ("__init__", "__main__")
    ]
    strays = sorted(str(p.relative_to(PACKAGE)) for p in modules if _stage(p) not in RANK)
    assert strays == [], f"modules outside the stages of docs/architecture.md: {strays}"


def test_no_import_from_a_lower_stage_to_a_higher_one() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.stem in ("__init__", "__main__"):
            continue
        me = _stage(path)
        for other in _imported_stages(path):
            if RANK[other] > RANK[me]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {other}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    # the gate itself can fail: a formats module importing the generator is reported
    planted = tmp_path / "x.py"
    planted.write_text("from orchestrator.generate.render import render_steps\n")
    assert "generate" in _imported_stages(planted)
    assert RANK["generate"] > RANK["formats"]
