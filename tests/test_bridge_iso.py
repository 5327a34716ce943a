"""The ISO and its checks as the flake wires them, on the stand-in tree (tests/bridge_standin:
its nixos/lib/eval-config.nix and nixos/tests/boot.nix report how they were called), with the
real Nix 2.8: Hydra's iso_minimal module (installation-cd-minimal-combined.nix), `system` given
as Hydra's evaluation gives it, the version label from nixpkgs-pin.json, the closure check of the
ISO and the boot tests of nixos/tests/boot.nix handed the bridged package set.

What stands in: nixpkgs' top level, eval-config.nix and boot.nix (current nixpkgs cannot be
evaluated by Nix 2.8); stdenv-bridge/default.nix is the real one.
"""

from __future__ import annotations

import json

from tests.conftest import REPO, run_nix

STANDIN = REPO / "tests" / "bridge_standin"
PIN = json.loads((REPO / "stdenv-bridge" / "nixpkgs-pin.json").read_text())
REV = "0123456789abcdef0123456789abcdef01234567"


def outputs(apply: str, pin: str = "{ }", check: bool = True):
    expr = f'(import {STANDIN}/harness.nix {{ repo = {REPO}; }}).outputsWithPin "2.99" ({pin})'
    proc = run_nix("eval", "--impure", "--json", "--expr", expr, "--apply", apply, check=check)
    return json.loads(proc.stdout) if check else proc


def test_the_iso_is_hydras_iso_minimal_job_on_the_bridged_set() -> None:
    got = outputs("o: { ours = o.packages.nixos-iso; theirs = o.hydraPartners.nixos-iso; }")
    ours, theirs = got["ours"], got["theirs"]
    assert PIN["iso_module"] == "installation-cd-minimal-combined.nix"
    for iso in (ours, theirs):
        assert iso["modules"] == ["installation-cd-minimal-combined.nix", "(inline)"]
        assert iso["system"] == "x86_64-linux"  # eval-config sets nixpkgs.system from it
        assert iso["nixos"] == [{"revision": REV, "versionSuffix": "(unset)"}]
    # the only difference: whose bootstrap the package set has
    assert ours["stages"] == "bridged" and theirs["stages"] == "nixpkgs-default"
    assert ours["hydraPairRoots"] == [{"name": "toplevel", "stages": "bridged"}]


def test_the_version_label_comes_from_the_pin() -> None:
    got = outputs(
        "o: o.packages.nixos-iso.nixos", '{ revCount = 912345; shortRev = "0123456789ab"; }'
    )
    assert got == [{"revision": REV, "versionSuffix": ".912345.0123456789ab"}]
    # one of the two missing: no suffix rather than half of one
    got = outputs("o: o.packages.nixos-iso.nixos", "{ revCount = 912345; }")
    assert got == [{"revision": REV, "versionSuffix": "(unset)"}]


def test_a_wrong_short_rev_or_rev_count_is_refused_naming_the_file() -> None:
    apply = "o: o.packages.nixos-iso.nixos"
    proc = outputs(apply, '{ revCount = 912345; shortRev = "fedcba987654"; }', check=False)
    assert proc.returncode != 0
    assert (
        'stdenv-bridge/nixpkgs-pin.json: shortRev "fedcba987654" is not an abbreviation of the '
        f"pinned rev {REV}" in proc.stderr
    )
    proc = outputs(apply, '{ revCount = "912345"; shortRev = "0123456789ab"; }', check=False)
    assert proc.returncode != 0
    assert "revCount must be a positive integer" in proc.stderr


def test_the_iso_checks_cover_its_closure_and_boot_it_as_hydra_does() -> None:
    got = outputs(
        "o: { names = builtins.attrNames o.checks;"
        " bios = o.checks.nixos-iso-boot-bios-cdrom; uefi = o.checks.nixos-iso-boot-uefi-cdrom; }"
    )
    assert {
        "no-nixpkgs-bootstrap-in-nixos-iso",
        "nixos-iso-boot-bios-cdrom",
        "nixos-iso-boot-uefi-cdrom",
    } <= set(got["names"])
    # boot.nix builds its ISO from the package set it is handed: ours
    assert got["bios"] == {"name": "boot-bios-cdrom", "system": "x86_64-linux", "stages": "bridged"}
    assert got["uefi"] == {"name": "boot-uefi-cdrom", "system": "x86_64-linux", "stages": "bridged"}
