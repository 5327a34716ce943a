"""Early cutoff with the real chain's tools and the real flake (nix/cutoff.nix, issue 20).

Runs when LIVE_BOOTSTRAP_CHECKOUT points at a live-bootstrap checkout with submodules (the
flake's live-bootstrap input). No pinned step of the real chain can build here (the first ones,
checksum-transcriber-1.0 and simple-patch-1.0, are kaem-era steps with no SHA256SUMS.pkgs pin;
every pinned step needs distfiles this machine does not have), so what is real here is: the tools
(lb-unpack built by M2-Mesoplanet and stage0-posix's unbz2, both from the seed) against GNU tar
-xp on a package packed the way helpers.sh's src_pkg packs, and the flake's evaluation: which
steps are cut, and that an upstream change before a pinned step keeps its layer's store path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.runner_support import synth

REPO = Path(__file__).resolve().parent.parent
CHECKOUT = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="set LIVE_BOOTSTRAP_CHECKOUT to a live-bootstrap checkout with submodules"
)
NIX = ["nix", *synth.NIX_FLAGS]


def flake(verb: str, source: str, *args: str) -> str:
    cmd = [*NIX, verb, "--override-input", "live-bootstrap", f"path:{source}", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        raise AssertionError(p.stderr[-5000:])
    return p.stdout


def built(attr: str) -> Path:
    out = flake("build", str(CHECKOUT), "--no-link", "--json", f"{REPO}#{attr}")
    return Path(json.loads(out)[0]["outputs"]["out"])


def out_path(source: str, attr: str) -> str:
    return str(json.loads(flake("eval", source, "--json", f"{REPO}#{attr}")))


def listing(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("directory", oct(st.st_mode & 0o777))
            else:
                out[rel] = ("file", oct(st.st_mode & 0o777), p.read_bytes())
    return out


def src_pkg(destdir: Path, repo: Path, name: str) -> Path:
    """helpers.sh's src_pkg (the branch with tar --sort): the same tar options and bzip2 --best."""
    tarball = repo / name.removesuffix(".bz2")
    subprocess.run(
        [
            "tar",
            "-C",
            str(destdir),
            "--sort=name",
            "--hard-dereference",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mode=go=rX,u+rw",
            "-cf",
            str(tarball),
            ".",
        ],
        check=True,
    )
    subprocess.run(["bzip2", "--best", str(tarball)], check=True)
    return repo / name


@pytest.mark.skipif(shutil.which("bzip2") is None, reason="needs bzip2 (to pack as src_pkg does)")
def test_real_tools_install_a_package_as_tar_xp_does(tmp_path: Path) -> None:
    unpack = built("lb-unpack") / "bin" / "lb-unpack"
    unbz2 = built("stage0") / "bin" / "unbz2"
    dest = tmp_path / "destdir"
    (dest / "usr" / "bin").mkdir(parents=True)
    (dest / "usr" / "lib" / "deep" / ("x" * 120)).mkdir(parents=True)  # a GNU long name
    (dest / "usr" / "share" / "empty").mkdir(parents=True)  # an empty directory of the package
    (dest / "usr" / "bin" / "tool").write_bytes(b"\x7fELF not really\n" * 1000)
    (dest / "usr" / "bin" / "tool").chmod(0o755)
    (dest / "usr" / "bin" / "su").write_bytes(b"setuid\n")
    (dest / "usr" / "bin" / "su").chmod(0o4755)
    (dest / "usr" / "lib" / "deep" / ("x" * 120) / ("y" * 90)).write_bytes(b"long\n")
    (dest / "usr" / "lib" / "libz.so").symlink_to("libz.so.1")
    (dest / "usr" / "lib" / "ro.txt").write_bytes(b"")
    (dest / "usr" / "lib" / "ro.txt").chmod(0o444)
    repo = tmp_path / "repo"
    repo.mkdir()
    pkg = src_pkg(dest, repo, "demo-1.0_0.tar.bz2")

    # what the layer derivations do, with the chain's own binaries
    tar = tmp_path / "demo.tar"
    subprocess.run([str(unbz2), "--file", str(pkg), "--output", str(tar)], check=True)
    layer = tmp_path / "layer"
    subprocess.run([str(unpack), "layer", str(tar), str(pkg), pkg.name, str(layer)], check=True)

    # what src_apply does: tar -xp into the root (here an empty one), the tarball kept
    ref = tmp_path / "ref"
    (ref / "external" / "repo").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(ref), "-xpf", str(tar)], check=True)
    shutil.copy(pkg, ref / "external" / "repo" / pkg.name)
    (ref / "external" / "repo" / pkg.name).chmod(0o644)

    got, want = listing(layer / "tree"), listing(ref)
    # the one difference: the setuid bit, which the store cannot keep (and Nix's seccomp filter
    # refuses); everything else, directory modes included, as tar -xp leaves it
    assert want["usr/bin/su"][1] == oct(0o755) or (ref / "usr/bin/su").stat().st_mode & 0o4000
    assert got["usr/bin/su"][1] == oct(0o755)
    got.pop("usr/bin/su"), want.pop("usr/bin/su")
    assert got == want
    assert (layer / "deletions").read_bytes() == b""


def test_the_real_chain_cuts_off_exactly_the_pinned_steps() -> None:
    cut = json.loads(
        flake(
            "eval",
            str(CHECKOUT),
            "--json",
            f"{REPO}#checks.x86_64-linux",
            "--apply",
            'c: builtins.filter (n: builtins.substring 0 7 n == "cutoff-") (builtins.attrNames c)',
        )
    )
    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.tree import SourceTree

    chain = load_chain(SourceTree.open(str(CHECKOUT)), "nix")
    pinned = {f"cutoff-{s.step.attr_name}" for s in chain.steps if s.pinned_package}
    # 149 of SHA256SUMS.pkgs' 154 pins belong to steps of the nix profile's chain
    assert set(cut) == pinned and len(pinned) == 149
    assert "cutoff-musl-1.1.24-pass1" in cut
    # the steps this machine can build are not pinned packages: they stay as they were
    assert not any("checksum-transcriber" in c or "simple-patch" in c for c in cut)
    name = out_path(str(CHECKOUT), 'packages.x86_64-linux."musl-1.1.24-pass1".name')
    assert name == "lb-layer-musl-1.1.24_0"


def test_an_upstream_change_before_a_pinned_step_keeps_its_layer(tmp_path: Path) -> None:
    copy = tmp_path / "lb"
    shutil.copytree(str(CHECKOUT), copy, symlinks=True)
    script = copy / "steps" / "tcc-0.9.27" / "pass1.kaem"
    script.write_text("# a comment added upstream\n" + script.read_text())
    attrs = [
        'packages.x86_64-linux."musl-1.1.24-pass1".outPath',
        'packages.x86_64-linux."bzip2-1.0.8-pass2".outPath',
        'checks.x86_64-linux."cutoff-musl-1.1.24-pass1".drvPath',
        'packages.x86_64-linux."tcc-0.9.27-pass1".outPath',
    ]
    before = [out_path(str(CHECKOUT), a) for a in attrs]
    after = [out_path(str(copy), a) for a in attrs]
    # the layers (pinned packages) keep their store paths ...
    assert after[:2] == before[:2]
    # ... while the step itself (what the check builds) and the changed kaem-era step do not
    assert after[2] != before[2]
    assert after[3] != before[3]
