"""The cost of a bump under early cutoff (orchestrator/maintain/cost.py), on real upstream data.

The two fixture revisions of live-bootstrap, and materialized copies of the pinned one with one
planted change each: a pin changed, a comment in a step's script. Expected sets are computed here
from SHA256SUMS.pkgs and the plan independently of the module's own bookkeeping.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.maintain.cost import rebuild_cost
from orchestrator.upstream.chain import Chain, load_chain
from orchestrator.upstream.tree import SourceTree
from tests.conftest import materialize

REPO = Path(__file__).resolve().parent.parent


def chain_of(root: Path) -> tuple[SourceTree, Chain]:
    tree = SourceTree.open(root)
    return tree, load_chain(tree, "nix")


def pins(root: Path) -> dict[str, str]:
    text = (root / "steps" / "SHA256SUMS.pkgs").read_text()
    return {line.split()[1]: line.split()[0] for line in text.splitlines() if line.strip()}


def test_fixture_bump_keeps_exactly_the_unchanged_pins(
    pinned_fixture: Path, old_fixture: Path
) -> None:
    old_tree, old = chain_of(old_fixture)
    new_tree, new = chain_of(pinned_fixture)
    cost = rebuild_cost(old_tree, old, new_tree, new)
    assert cost.steps_changed
    old_pins, new_pins = pins(old_fixture), pins(pinned_fixture)
    expect_kept = {
        s.step.attr_name
        for s in new.steps
        if s.step.era == "bash"
        and s.step.directive == "build"
        and s.package_file in new_pins
        and old_pins.get(s.package_file or "") == new_pins[s.package_file or ""]
        and any(o.package_file == s.package_file and o.pinned_package for o in old.steps)
    }
    assert {c.attr for c in cost.kept} == expect_kept
    assert len(expect_kept) > 10
    assert {c.attr for c in cost.kept} | {c.attr for c in cost.rebuilt} == {
        s.step.attr_name for s in new.steps
    }
    # every unpinned step is rebuilt (input-addressed over a root holding steps/)
    unpinned = {s.step.attr_name for s in new.steps if not s.pinned_package}
    assert unpinned <= {c.attr for c in cost.rebuilt}


def test_no_change_rebuilds_nothing(pinned_fixture: Path) -> None:
    tree, chain = chain_of(pinned_fixture)
    cost = rebuild_cost(tree, chain, tree, chain)
    assert not cost.steps_changed and cost.rebuilt == []
    assert len(cost.kept) == len(chain.steps)


def test_one_changed_pin_rebuilds_that_step_and_the_unpinned_ones(
    pinned_fixture: Path, tmp_path: Path
) -> None:
    old_root = materialize(pinned_fixture, tmp_path / "old")
    new_root = tmp_path / "new"
    shutil.copytree(old_root, new_root, symlinks=True)
    sums = new_root / "steps" / "SHA256SUMS.pkgs"
    sums.write_text(
        "\n".join(
            ("0" * 64 + line[64:]) if "musl-1.1.24_0.tar.bz2" in line else line
            for line in sums.read_text().splitlines()
        )
        + "\n"
    )
    old_tree, old = chain_of(old_root)
    new_tree, new = chain_of(new_root)
    cost = rebuild_cost(old_tree, old, new_tree, new)
    rebuilt_pinned = {c.attr: c.reason for c in cost.rebuilt if c.reason.startswith("pin of")}
    assert rebuilt_pinned == {"musl-1.1.24-pass1": "pin of musl-1.1.24_0.tar.bz2 changed"}
    assert {c.attr for c in cost.kept} == {
        s.step.attr_name for s in new.steps if s.pinned_package
    } - {"musl-1.1.24-pass1"}


def test_a_comment_in_a_script_rebuilds_only_unpinned_steps(
    pinned_fixture: Path, tmp_path: Path
) -> None:
    old_root = materialize(pinned_fixture, tmp_path / "old")
    new_root = tmp_path / "new"
    shutil.copytree(old_root, new_root, symlinks=True)
    script = new_root / "steps" / "improve" / "update_env.sh"
    script.write_text("# a comment\n" + script.read_text())
    old_tree, old = chain_of(old_root)
    new_tree, new = chain_of(new_root)
    cost = rebuild_cost(old_tree, old, new_tree, new)
    assert cost.steps_changed
    assert {c.attr for c in cost.rebuilt} == {
        s.step.attr_name for s in new.steps if not s.pinned_package
    }


def test_diff_prints_the_cost(pinned_fixture: Path, old_fixture: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "orchestrator", "diff", str(old_fixture), str(pinned_fixture)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr
    assert "cost of the bump (early cutoff):" in p.stdout
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "diff",
            str(old_fixture),
            str(pinned_fixture),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    import json

    data = json.loads(p.stdout)
    assert data["rebuild"]["steps_changed"] is True
    assert data["rebuild"]["kept"] and data["rebuild"]["rebuilt"]
