"""The flake, evaluated by real Nix with the live-bootstrap input overridden by a local tree.

The override is how offline users (and CI) point the flake at a checkout; here the tree is
materialized from the data-only fixture, so evaluation is real and building is not attempted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, materialize, run_nix


def flake_eval(attr: str, tree: Path, *extra: str, check: bool = True):
    return run_nix(
        "eval",
        "--json",
        f"{REPO}#{attr}",
        "--override-input",
        "live-bootstrap",
        f"path:{tree}",
        "--no-write-lock-file",
        *extra,
        check=check,
    )


def test_chain_outputs_evaluate_without_nixpkgs(materialized_pinned: Path, nix: str) -> None:
    # nixpkgs is locked but not in the store and there is no network: if evaluating the
    # chain forced it, these evaluations would fail.
    names = json.loads(
        flake_eval(
            "checks.x86_64-linux", materialized_pinned, "--apply", "builtins.attrNames"
        ).stdout
    )
    assert "steps-fresh" in names
    # steps-fresh hashes the stage0-posix scripts, which the data-only fixture does not carry:
    # over the materialized tree it fails, naming them (and not nixpkgs)
    proc = flake_eval("checks.x86_64-linux.steps-fresh.drvPath", materialized_pinned, check=False)
    assert proc.returncode != 0 and "seed/stage0-posix/kaem.x86" in proc.stderr
    assert "nixpkgs" not in proc.stderr


def test_steps_fresh_evaluates_over_the_real_input(pinned_source: Path, nix: str) -> None:
    drv = json.loads(flake_eval("checks.x86_64-linux.steps-fresh.drvPath", pinned_source).stdout)
    assert Path(drv).is_file()


def test_freshness_check_fails_when_the_input_moved(
    pinned_fixture: Path, tmp_path: Path, nix: str
) -> None:
    tree = materialize(pinned_fixture, tmp_path / "lb")
    manifest = tree / "steps/manifest"
    manifest.write_text(manifest.read_text() + "build: something-new-1.0\n")
    proc = flake_eval("checks.x86_64-linux.steps-fresh.drvPath", tree, check=False)
    assert proc.returncode != 0
    assert "steps/ is stale" in proc.stderr and "steps/manifest" in proc.stderr


@pytest.mark.parametrize("system", ["x86_64-linux", "i686-linux"])
def test_both_systems_are_exposed(materialized_pinned: Path, nix: str, system: str) -> None:
    checks = json.loads(
        flake_eval(f"checks.{system}", materialized_pinned, "--apply", "builtins.attrNames").stdout
    )
    packages = json.loads(
        flake_eval(
            f"packages.{system}", materialized_pinned, "--apply", "builtins.attrNames"
        ).stdout
    )
    # the x86 chain on both systems; AMD64 stage0 only where it can run
    assert {"steps-fresh", "stage0-answers", "stage0-self-reproduction"} <= set(checks)
    assert {"stage0", "live-bootstrap", "mes-0.27.1-pass1"} <= set(packages)
    assert ("stage0-amd64" in packages) == (system == "x86_64-linux")


def test_flake_lock_pins_the_fixture_commit_with_submodules(pinned_fixture: Path) -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["live-bootstrap"]]
    commit = (pinned_fixture / "COMMIT").read_text().strip()
    assert node["locked"]["rev"] == commit and node["locked"]["submodules"] is True
    assert node["locked"]["narHash"].startswith("sha256-") and node["flake"] is False
