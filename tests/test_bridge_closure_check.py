"""The flake check "no nixpkgs bootstrap in the closure" (stdenv-bridge/closure-check-drv.nix
and closure-check.sh), built for real.

Stand-ins: the seed set's bash, coreutils and grep are the host's, linked into one derivation
(so these builds run with the sandbox off, as tests/support/cache.py's do); the targets are
small derivations that are instantiated, never built (the check reads their .drv closure).
The forbidden .drv list that closure-check.nix computes from nixpkgs' own stage0.nix is given
here directly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.cache import needs_nix, nix, unique_salt

EXPR = r"""
{ salt }:
let
  system = builtins.currentSystem;
  tools = derivation {
    name = "host-tools-standin-${salt}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin; for t in bash grep sort wc; do /bin/ln -s $(PATH=/usr/bin:/bin command -v $t) $out/bin/$t; done" ];
  };
  plain = name: deps: derivation {
    inherit name system deps;
    builder = "/bin/sh";
    args = [ "-c" "exit 1" ];
  };
  theirs = plain "mes-0.27-${salt}" [ ];
  tarball = derivation {
    name = "bootstrap-tools.tar.xz";
    inherit system;
    builder = "builtin:fetchurl";
    url = "http://tarballs.nixos.org/stdenv/x/${salt}/bootstrap-tools.tar.xz";
    urls = [ "http://tarballs.nixos.org/stdenv/x/${salt}/bootstrap-tools.tar.xz" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "0000000000000000000000000000000000000000000000000000";
    unpack = false;
    executable = false;
  };
  check = import REPO/stdenv-bridge/closure-check-drv.nix {
    inherit system;
    forbiddenDrvs = [ theirs.drvPath ];
    forbiddenNames = [ "bootstrap-tools.tar.xz" "busybox" ];
    bash = tools; coreutils = tools; gnugrep = tools;
  };
in
{
  theirsDrv = theirs.drvPath;
  viaDrv = check "stdenv" (plain "stdenv-${salt}" [ (plain "gcc-${salt}" [ theirs ]) ]);
  viaTarball = check "hello" (plain "hello-${salt}" [ tarball ]);
  clean = check "hello" (plain "hello-${salt}" [ (plain "glibc-${salt}" [ ]) ]);
}
"""


@pytest.fixture(scope="module")
def expr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path("/bin/bash").exists() or shutil.which("grep") is None:
        pytest.skip("the stand-in tools are the host's bash and grep")
    f = tmp_path_factory.mktemp("closure-check") / "check.nix"
    f.write_text(EXPR.replace("REPO/", f"{REPO}/"))
    return f


def build(expr_file: Path, attr: str, salt: str):
    return nix(
        "build",
        "--no-link",
        "--json",
        "-f",
        str(expr_file),
        attr,
        "--argstr",
        "salt",
        salt,
        "-L",
        check=False,
    )


@needs_nix
def test_a_forbidden_derivation_deep_in_the_closure_fails_the_check(expr_file: Path) -> None:
    salt = unique_salt()
    theirs = nix(
        "eval", "--raw", "-f", str(expr_file), "theirsDrv", "--argstr", "salt", salt
    ).stdout
    proc = build(expr_file, "viaDrv", salt)
    assert proc.returncode != 0
    assert (
        f"forbidden: {theirs} (nixpkgs' own bootstrap) is in the closure of stdenv-{salt}"
        in proc.stderr
    )


@needs_nix
def test_a_bootstrap_files_download_fails_the_check(expr_file: Path) -> None:
    salt = unique_salt()
    proc = build(expr_file, "viaTarball", salt)
    assert proc.returncode != 0
    assert (
        "-bootstrap-tools.tar.xz.drv (nixpkgs' own bootstrap: bootstrap-tools.tar.xz)"
        in proc.stderr
    )


@needs_nix
def test_a_clean_closure_passes_without_building_the_target(expr_file: Path) -> None:
    salt = unique_salt()
    proc = build(expr_file, "clean", salt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(json.loads(proc.stdout)[0]["outputs"]["out"]).read_text()
    # hello and glibc: the walk went through the .drv files; the target itself was never built
    assert out == f"hello-{salt}: 2 derivations, none of nixpkgs' own bootstrap\n"
