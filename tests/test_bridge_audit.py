"""``orchestrator audit stdenv | hello | nixos-iso``: the nixpkgs side of a bridged closure.

The bridged nixpkgs cannot be evaluated here (Nix 2.8), so a stand-in flake plays the bridge's
flake: its ``stdenv`` and ``hello`` take fixed-output downloads the way nixpkgs does (an upstream
rustc binary, nixpkgs' bootstrap-tools tarball) and a derivation listed as nixpkgs' own
minimal-bootstrap in its ``lib.bridge.policy`` (the real policy file, stdenv-bridge/
closure-policy.json, with a stand-in .drv list). Evaluation only: nothing is built or fetched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.conftest import REPO

FLAKE = r"""
{
  outputs = { self }:
    let
      system = "x86_64-linux";
      fetch = name: url: derivation {
        inherit name url system;
        builder = "builtin:fetchurl";
        outputHashMode = "flat";
        outputHashAlgo = "sha256";
        outputHash = "0000000000000000000000000000000000000000000000000000";
        urls = [ url ];
        unpack = false;
        executable = false;
      };
      rust = fetch "rust-1.80.0-x86_64-unknown-linux-gnu.tar.gz"
        "https://static.rust-lang.org/dist/rust-1.80.0-x86_64-unknown-linux-gnu.tar.gz";
      tools = fetch "bootstrap-tools.tar.xz"
        "http://tarballs.nixos.org/stdenv/x86_64-unknown-linux-gnu/abc/bootstrap-tools.tar.xz";
      theirMes = derivation { name = "mes-0.27"; inherit system; builder = "/bin/sh"; };
      pkg = name: deps: derivation {
        inherit name system deps;
        builder = "/bin/sh";
        args = [ "-c" "exit 1" ];
      };
    in
    {
      packages.${system} = {
        stdenv = pkg "stdenv-linux" [ rust tools theirMes ];
        hello = pkg "hello-2.12.2" [ rust ];
      };
      lib.bridge.policy = builtins.fromJSON (builtins.readFile ./closure-policy.json) // {
        rev = "standin";
        forbidden_drv_paths = [ theirMes.drvPath ];
      };
    };
}
"""


@pytest.fixture
def flake(tmp_path: Path, nix: str) -> str:
    shutil.copyfile(REPO / "stdenv-bridge/closure-policy.json", tmp_path / "closure-policy.json")
    (tmp_path / "flake.nix").write_text(FLAKE)
    return f"path:{tmp_path}"


def audit_json(capsys: pytest.CaptureFixture[str], target: str) -> tuple[int, dict]:
    rc = main(["audit", target, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_nixpkgs_own_bootstrap_fails_the_audit(flake: str, capsys) -> None:
    rc, report = audit_json(capsys, f"{flake}#stdenv")
    assert rc == 1
    bridge = report["bridge"]
    forbidden = {f["name"]: f for f in bridge["nixpkgs_bootstrap"]}
    assert set(forbidden) == {"bootstrap-tools.tar.xz", "mes-0.27"}
    assert "bootstrapFiles" in forbidden["bootstrap-tools.tar.xz"]["why"]
    assert "minimal-bootstrap (nixpkgs standin)" in forbidden["mes-0.27"]["why"]
    assert forbidden["mes-0.27"]["used_by"] == ["stdenv-linux"]
    (rust,) = bridge["binary_bootstraps"]
    assert rust["name"] == "rustc (upstream binary): rust-1.80.0-x86_64-unknown-linux-gnu.tar.gz"
    assert rust["url"].startswith("https://static.rust-lang.org/dist/")


def test_binary_bootstraps_are_listed_by_name_and_pass(flake: str, capsys) -> None:
    rc = main(["audit", f"{flake}#hello"])
    out = capsys.readouterr().out
    assert "binary bootstrap nixpkgs takes: rustc (upstream binary)" in out
    assert "no derivation of nixpkgs' own bootstrap (nixpkgs standin)" in out
    assert rc == 0
