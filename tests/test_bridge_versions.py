"""Versions as nixpkgs compares them: our stage0's checkBootstrapPackages, fed with the pinned
nixpkgs' top-level versions as stdenv-bridge/members.json records them (binutils 2.46 and
patchelf 0.15.2 at the pin; the chain's tools against minimal-bootstrap's versions, lower
bounds of the top level), evaluated by the real Nix 2.8 over part 1's real member versions
(stand-in derivations carrying them: nothing is built); the same rule in
orchestrator/bridge/members.py and nix/bridge.nix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.bridge import members as bridge
from tests.conftest import REPO, run_nix

DATA = json.loads((REPO / "stdenv-bridge/members.json").read_text())
SEED_SET = json.loads((REPO / "stdenv-bridge/seed-set.json").read_text())
STANDIN = REPO / "tests/bridge_standin"


def pinned_toplevel() -> dict[str, str]:
    """The top-level attribute checkBootstrapPackages reads for each member -> its version at
    the pin (or the recorded lower bound)."""
    by_name = {s["name"]: s for s in DATA["steps"]}
    return {SEED_SET["toplevel"][m]: by_name[m]["nixpkgs"]["version"] for m in SEED_SET["members"]}


def check(toplevel: dict[str, str], data: dict = DATA, tmp: Path | None = None):
    """The check checkBootstrapPackages of stage0.nix over members with members.json's versions."""
    assert tmp is not None
    (tmp / "members.json").write_text(json.dumps(data))
    (tmp / "toplevel.json").write_text(json.dumps(toplevel))
    expr = f"""
      let
        data = builtins.fromJSON (builtins.readFile {tmp}/members.json);
        mk = s: derivation {{
          name = "${{s.name}}-${{s.version}}"; inherit (s) version;
          system = "x86_64-linux"; builder = "/bin/sh";
        }} // {{ nixpkgsCounterpart = s.nixpkgs; }};
        members = builtins.listToAttrs (map (s: {{ name = s.name; value = mk s; }})
          (builtins.filter (s: s.member or false) data.steps));
        stage0 = import {REPO}/stdenv-bridge/stage0.nix {{ bridge = members; nixpkgs = {STANDIN}; }}
          {{ localSystem = {{ system = "x86_64-linux"; libc = "glibc"; }}; }};
        toplevel = builtins.mapAttrs (_: v: {{ version = v; }})
          (builtins.fromJSON (builtins.readFile {tmp}/toplevel.json));
      in stage0.checkBootstrapPackages toplevel
    """
    return run_nix("eval", "--impure", "--json", "--expr", expr, check=False)


def test_the_pins_versions_are_recorded_where_the_check_reads_them() -> None:
    top = pinned_toplevel()
    assert top["binutils"] == "2.46" and top["patchelf"] == "0.15.2"
    assert top["glibc"] == "2.42" and top["gcc"] == "15.2.0"
    for s in DATA["steps"]:
        n = s["nixpkgs"]
        # a minimal-bootstrap counterpart stands only as a lower bound of a named top-level one
        assert n["attr"].startswith("minimal-bootstrap.") == ("lower_bound_of" in n), s["name"]


def test_the_seed_passes_nixpkgs_check_against_the_pins_versions(tmp_path: Path) -> None:
    proc = check(pinned_toplevel(), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) is True
    assert "warning" not in proc.stderr  # no false alarm for binutils 2.46.0 vs 2.46


def test_one_release_spelled_two_ways_is_not_newer(tmp_path: Path) -> None:
    # the false alarm nixpkgs' bare compareVersions gives ...
    raw = run_nix("eval", "--expr", 'builtins.compareVersions "2.46" "2.46.0"').stdout.strip()
    assert raw == "-1"
    # ... and what the bridge sees, in Nix and in Python
    expr = f'let v = import {REPO}/stdenv-bridge/versions.nix; in [ (v.atLeast "2.46" "2.46.0") (v.atLeast "2.46" "2.46.1") (v.normalise "10.0.0") (v.normalise "1.0.8") ]'
    got = json.loads(run_nix("eval", "--impure", "--json", "--expr", expr).stdout)
    assert got == [True, False, "10", "1.0.8"]
    assert not bridge.newer("2.46.0", "2.46") and bridge.newer("2.46.1", "2.46")
    assert bridge.normalised("10.0.0") == "10" and bridge.normalised("1.0.8") == "1.0.8"


def test_planted_faults_a_newer_seed_warns_and_fails(tmp_path: Path) -> None:
    # the patchelf exception removed: 0.18.0 is newer than the pin's 0.15.2
    data = json.loads(json.dumps(DATA))
    for s in data["steps"]:
        s["nixpkgs"].pop("exception", None)
    proc = check(pinned_toplevel(), data=data, tmp=tmp_path)
    assert json.loads(proc.stdout) is False
    assert (
        "seed patchelf 0.18.0 (from live-bootstrap) is newer than pkgs.patchelf 0.15.2"
        in proc.stderr
    )
    # a top-level glibc older than the seed's
    top = dict(pinned_toplevel(), glibc="2.41")
    proc = check(top, tmp=tmp_path)
    assert json.loads(proc.stdout) is False
    assert "seed glibc 2.42 (from live-bootstrap) is newer than pkgs.glibc 2.41" in proc.stderr
    # an exception does not stretch past the version nixpkgs' own seed ships
    data = json.loads(json.dumps(DATA))
    for s in data["steps"]:
        if s["name"] == "patchelf":
            s["version"] = "0.18.1"
    proc = check(pinned_toplevel(), data=data, tmp=tmp_path)
    assert json.loads(proc.stdout) is False


@pytest.mark.parametrize(("version", "refused"), [("0.18.0", False), ("0.18.1", True)])
def test_members_py_allows_the_exception_and_no_further(
    tmp_path: Path, version: str, refused: bool
) -> None:
    data = json.loads(json.dumps(DATA))
    for s in data["steps"]:
        if s["name"] == "patchelf":
            s["version"] = version
            s["sources"][0]["file"] = f"patchelf-{version}.tar.gz"
    path = tmp_path / "members.json"
    path.write_text(json.dumps(data, indent=1))
    for f in (REPO / "stdenv-bridge").glob("*.sh"):
        (tmp_path / f.name).write_text(f.read_text())
    if refused:
        with pytest.raises(bridge.BridgeError) as exc:
            bridge.load(path)
        assert "patchelf 0.18.1 is newer than the pinned nixpkgs' patchelf 0.15.2" in str(exc.value)
    else:
        assert bridge.load(path).steps
