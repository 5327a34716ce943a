"""stdenv-bridge/members.json and the step scripts: the data the bridge is made of, checked.

The real file is checked (every member the issue names, scripts present and parseable by bash,
sources with upstream hashes, no member newer than its nixpkgs counterpart, chain members naming
a build of the committed chain) and bad variants are refused with the file, the line and both
versions named. The same refusals happen at evaluation time in nix/bridge.nix
(tests/test_bridge_standin.py evaluates them with real Nix).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.bridge import members as bridge
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import committed_tree

REPO = Path(__file__).resolve().parents[1]
MEMBERS = [
    "bash",
    "coreutils",
    "findutils",
    "diffutils",
    "gawk",
    "gnugrep",
    "gnused",
    "gnumake",
    "gnupatch",
    "gnutar",
    "gzip",
    "bzip2",
    "xz",
    "patchelf",
    "binutils",
    "gcc",
    "glibc",
    "linux-headers",
]


def chain_builds() -> set[str]:
    chain = load_chain(committed_tree(REPO / "steps"), "nix")
    return {s.step.name for s in chain.steps if s.step.directive == "build"}


def test_the_real_data_is_consistent() -> None:
    data = bridge.load(bridge.DATA_FILE, chain_builds=chain_builds())
    assert sorted(m.name for m in data.members) == sorted(MEMBERS)
    assert data.target == "x86_64-linux-gnu"
    names = [s.name for s in data.steps]
    # the order the steps must run in: headers and binutils, gcc pass 1, glibc, the final gcc
    assert names.index("gcc-pass1") < names.index("glibc") < names.index("gcc")
    for s in data.steps:
        exception = s.nixpkgs.exception
        if exception is None:
            assert not bridge.newer(s.version, s.nixpkgs.version), s.name
        else:  # newer only up to what nixpkgs' own seed ships, with the reason
            assert not bridge.newer(s.version, exception.version) and exception.why, s.name
            assert exception.exception_from.startswith("pkgs/"), s.name
        # a file at a commit, or the top-level attribute's version at the pinned commit
        assert s.nixpkgs.counterpart_from.startswith(("pkgs/", "pkgs.")), s.name
        assert "@" in s.nixpkgs.counterpart_from, s.name
        for src in s.sources:
            assert src.sha256.startswith("sha256-") and src.url.startswith("https://")
            assert src.source_from.startswith("pkgs/") and "@" in src.source_from
            assert src.file in src.url
        if s.member:
            assert s.test, s.name


def test_same_upstream_tarball_as_the_chain_where_both_use_one() -> None:
    """gcc-15.2.0.tar.xz: nixpkgs' hash (SRI) and live-bootstrap's pin (hex) are one file."""
    import base64

    data = bridge.load()
    gcc = next(s for s in data.steps if s.name == "gcc")
    sri = gcc.sources[0].sha256.removeprefix("sha256-")
    pins = (REPO / "steps" / "distfiles.nix").read_text()
    assert base64.b64decode(sri).hex() in pins


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_every_script_parses() -> None:
    scripts = sorted((REPO / "stdenv-bridge").glob("*.sh"))
    assert {p.name for p in scripts} >= {s.script for s in bridge.load().steps}
    for p in scripts:
        proc = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{p.name}: {proc.stderr}"


def _variant(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path / "stdenv-bridge"
    shutil.copytree(REPO / "stdenv-bridge", d)
    raw = json.loads((d / "members.json").read_text())
    change(raw)
    (d / "members.json").write_text(json.dumps(raw, indent=2))
    return d / "members.json"


def _step(raw: dict, name: str) -> dict:
    return next(s for s in raw["steps"] if s["name"] == name)


def _line_of(path: Path, name: str) -> int:
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if f'"name": "{name}"' in line
    )


def test_a_member_newer_than_nixpkgs_is_refused(tmp_path: Path) -> None:
    f = _variant(tmp_path, lambda raw: _step(raw, "glibc").update(version="2.43"))
    with pytest.raises(bridge.BridgeError) as exc:
        bridge.load(f)
    err = exc.value
    assert "glibc 2.43 is newer than the pinned nixpkgs' glibc 2.42" in err.message
    assert err.file == str(f) and err.line == _line_of(f, "glibc")


def test_a_missing_script_is_refused(tmp_path: Path) -> None:
    f = _variant(tmp_path, lambda raw: _step(raw, "patchelf").update(script="nope.sh"))
    with pytest.raises(bridge.BridgeError, match="script nope.sh does not exist"):
        bridge.load(f)


def test_a_source_without_hash_is_refused(tmp_path: Path) -> None:
    f = _variant(tmp_path, lambda raw: _step(raw, "binutils")["sources"][0].update(sha256=""))
    with pytest.raises(bridge.BridgeError) as exc:
        bridge.load(f)
    assert "sha256" in exc.value.message and exc.value.line == _line_of(f, "binutils")


def test_inputs_must_be_earlier_steps(tmp_path: Path) -> None:
    f = _variant(tmp_path, lambda raw: _step(raw, "binutils").update(inputs=["glibc"]))
    with pytest.raises(bridge.BridgeError, match="input glibc is not an earlier bridge step"):
        bridge.load(f)


def test_a_chain_member_must_name_a_chain_build(tmp_path: Path) -> None:
    f = _variant(tmp_path, lambda raw: _step(raw, "gnused").update(step="sed-9.9", version="9.9"))
    # 9.9 is also newer than nixpkgs' 4.9: make the counterpart newer to reach the chain check
    raw = json.loads(f.read_text())
    _step(raw, "gnused")["nixpkgs"]["version"] = "10"
    f.write_text(json.dumps(raw, indent=2))
    with pytest.raises(bridge.BridgeError, match="the chain has no build of sed-9.9"):
        bridge.load(f, chain_builds=chain_builds())


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="needs nix")
def test_version_order_is_nix_compare_versions(tmp_path: Path) -> None:
    """bridge.newer orders the data's versions as nix/bridge.nix does: builtins.compareVersions
    on stdenv-bridge/versions.nix's normalised versions."""
    data = bridge.load()
    versions = sorted({v for s in data.steps for v in (s.version, s.nixpkgs.version)})
    versions += ["2.43", "4.10.0", "4.9", "5.3p3", "15.2.0.1", "2.46.0", "10.0", "1.0"]
    pairs = [[a, b] for a in versions for b in versions]
    expr = (
        f"let v = import {bridge.BRIDGE_DIR}/versions.nix; in "
        "map (p: builtins.compareVersions (v.normalise (builtins.elemAt p 0)) "
        "(v.normalise (builtins.elemAt p 1))) "
        "(builtins.fromJSON (builtins.readFile ./pairs.json))"
    )
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    (tmp_path / "cmp.nix").write_text(expr)
    proc = subprocess.run(
        ["nix-instantiate", "--eval", "--json", "--strict", str(tmp_path / "cmp.nix")],
        capture_output=True,
        text=True,
        check=True,
    )
    for (a, b), c in zip(pairs, json.loads(proc.stdout), strict=True):
        assert bridge.newer(a, b) == (c > 0), (a, b, c)
