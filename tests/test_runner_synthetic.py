"""The runner on a synthetic live-bootstrap-shaped chain, built for real in the Nix sandbox.

The tree (tests/runner_support/synth.py) is generated with the real generator and built with
nix/runner.nix, using ns-run compiled by the host compiler and a stand-in toolchain from Debian
inside the root filesystem (busybox-static, mescc-tools' kaem, bash): a stand-in because the real
chain's tools after simple-patch need distfiles CI lacks.

One module-scoped chain is built in three phases: (1) with UPDATE_CHECKSUMS defined, to learn the
package tarballs' hashes; (2) with those pins in SHA256SUMS.pkgs (every property below is checked
on it); (3) with one wrong pin, which must fail that step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.runner_support import synth

pytestmark = pytest.mark.skipif(
    shutil.which("nix-build") is None or bool(synth.missing_tools()),
    reason=f"needs nix and {', '.join(synth.missing_tools()) or 'nothing'}",
)

PACKAGES = ["delta-1.0_0.tar.bz2", "delta-1.0_1.tar.bz2", "epsilon-1.0_0.tar.bz2"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    s = synth.Synth(tmp_path_factory.mktemp("runner-synth"))
    # phase 1: learn the package tarballs' hashes (helpers skip src_checksum, no Nix-level pin)
    s.prepare(None, update_checksums=True)
    s.build(["final"])
    pins = {}
    for attr, pkg in (
        ("delta-1.0-pass1", PACKAGES[0]),
        ("delta-1.0-pass2", PACKAGES[1]),
        ("epsilon-1.0-pass1", PACKAGES[2]),
    ):
        pins[pkg] = synth.sha256((s.out(attr) / "tree" / "external" / "repo" / pkg).read_bytes())
    # phase 2: the pinned chain
    s.prepare(pins)
    s.pins = pins
    s.build(["final"])
    return s


def tree(s, attr: str) -> Path:
    return s.out(attr) / "tree"


def test_plan_predicates_define_and_passes(chain):
    assert chain.attrs == [
        "alpha-1.0-pass1",
        "gamma-1.0-pass1",  # ( FEATURE == True ) after define: FEATURE = ( ARCH == x86 )
        "bash-5.0-pass1",
        "improve-setup_repo-1",
        "improve-update_env-1",
        "delta-1.0-pass1",
        "delta-1.0-pass2",  # the same package rebuilt: pass 2
        "uninstall-1",
        "epsilon-1.0-pass1",
    ]  # beta-1.0 ( CHROOT == False ) is dropped


def test_layering_each_output_holds_only_its_changes(chain):
    assert sorted(p.name for p in (tree(chain, "alpha-1.0-pass1") / "usr" / "bin").iterdir()) == [
        "alpha-tool"
    ]
    # bash-5.0 added one file; nothing from alpha or gamma is repeated in its output
    files = [
        p.relative_to(tree(chain, "bash-5.0-pass1")).as_posix()
        for p in tree(chain, "bash-5.0-pass1").rglob("*")
        if p.is_file()
    ]
    assert files == ["usr/bin/bash"]
    # the last step sees every earlier layer (its script asserts the files; see synth.EPSILON)
    verdict = tree(chain, "epsilon-1.0-pass1") / "usr" / "share" / "epsilon" / "verdict"
    assert verdict.read_text() == "ok\n"


def test_deletions_are_recorded_explicitly(chain):
    assert (chain.out("delta-1.0-pass2") / "deletions").read_text() == (
        "D /usr/share/alpha/alpha.txt\nO /usr/share/delta\n"
    )
    assert (chain.out("uninstall-1") / "deletions").read_text() == "D /usr/share/gamma/a\n"
    assert (chain.out("alpha-1.0-pass1") / "deletions").read_text() == ""
    # the replaced directory holds only the new entry in the output
    assert [p.name for p in (tree(chain, "delta-1.0-pass2") / "usr/share/delta").iterdir()] == [
        "only"
    ]
    # no device files ever reach the store
    for attr in chain.attrs:
        for p in tree(chain, attr).rglob("*"):
            assert p.is_dir() or p.is_file() or p.is_symlink(), p


def test_env_state_is_carried_forward(chain):
    env = (chain.out("improve-update_env-1") / "state" / "env").read_text()
    assert "export FOO=from-update-env\n" in env
    assert (tree(chain, "improve-update_env-1") / "steps" / "env").read_text() == env
    environ = (chain.out("improve-update_env-1") / "state" / "environ").read_bytes().split(b"\0")
    assert b"FOO=from-update-env" in environ
    assert not any(e.startswith(b"BINDIR=") for e in environ)  # unset, re-set unexported
    # kaem-era steps export every variable of the script (cfg, env, pkg), as kaem does
    kaem_env = (chain.out("bash-5.0-pass1") / "state" / "environ").read_bytes().split(b"\0")
    assert b"pkg=bash-5.0" in kaem_env and b"BINDIR=/usr/bin" in kaem_env
    # steps that do not touch /steps/env leave no copy of it
    assert not (tree(chain, "delta-1.0-pass1") / "steps").exists()


def test_package_tarballs_match_their_pins(chain):
    for attr, pkg in (("delta-1.0-pass1", PACKAGES[0]), ("delta-1.0-pass2", PACKAGES[1])):
        data = (tree(chain, attr) / "external" / "repo" / pkg).read_bytes()
        assert synth.sha256(data) == chain.pins[pkg]
    drv = subprocess.run(
        ["nix", "show-derivation", *synth.NIX_FLAGS[:2], chain.drv("delta-1.0-pass1")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"expect {chain.pins[PACKAGES[0]]} /external/repo/{PACKAGES[0]}" in drv


def test_rebuild_gives_identical_outputs(chain):
    for attr in ("alpha-1.0-pass1", "delta-1.0-pass2", "epsilon-1.0-pass1"):
        p = chain.build([attr], ["--check"], check=False)
        assert p.returncode == 0, p.stderr[-3000:]


def test_wrong_pin_fails_that_step_naming_file_expected_actual(chain, tmp_path):
    wrong = dict(chain.pins)
    wrong[PACKAGES[0]] = "0" * 64
    chain.prepare(wrong)
    try:
        p = chain.build(["final"], check=False)
        assert p.returncode != 0
        log = p.stderr
        assert "FAILED: delta-1.0-pass1 (build: delta-1.0, pass 1" in log
        assert f"checksum mismatch for /external/repo/{PACKAGES[0]}" in log
        assert "expected: " + "0" * 64 in log
        assert "actual:   " + chain.pins[PACKAGES[0]] in log
        # nothing downstream was built
        assert "synth-epsilon-1.0-pass1" not in "".join(
            line for line in log.splitlines() if line.startswith("building ")
        )
    finally:
        chain.prepare(chain.pins)


def test_resume_after_interruption(chain):
    """Kill a build midway; the rebuild does not rebuild the steps that finished."""
    s = chain
    prefix = f"resume{time.time_ns()}-"  # fresh derivations, same chain
    args = s.build_cmd(["final"], ["--argstr", "prefix", prefix, "--argstr", "slow", "30"])
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    log = ""
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            log += line
            if "building '" in line and f"{prefix}delta-1.0-pass2" in line:
                time.sleep(2)  # inside the slow step
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = re.findall(rf"{prefix}([\w.+-]+)\.drv", log)
    assert "delta-1.0-pass1" in finished
    p = subprocess.run([*args, "--dry-run"], capture_output=True, text=True)
    to_build = re.findall(rf"{prefix}([\w.+-]+)\.drv", p.stderr)
    assert "delta-1.0-pass2" in to_build and "epsilon-1.0-pass1" in to_build
    for done in ("alpha-1.0-pass1", "gamma-1.0-pass1", "delta-1.0-pass1"):
        assert done not in to_build
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    built = re.findall(rf"building '[^']*{prefix}([\w.+-]+)\.drv", p.stderr)
    assert built == ["delta-1.0-pass2", "uninstall-1", "epsilon-1.0-pass1"]


def test_flattened_root_filesystem(chain):
    """MkCheckpoint (what .#live-bootstrap is): every layer merged, deletions applied."""
    root = chain.out("flat") / "tree"
    assert (root / "usr/share/epsilon/verdict").read_text() == "ok\n"
    assert (root / "usr/bin/delta").read_text() == "#!/usr/bin/sh\necho delta v2\n"
    assert not (root / "usr/share/alpha/alpha.txt").exists()
    assert sorted(p.name for p in (root / "usr/share/delta").iterdir()) == ["only"]
    assert not (root / "usr/share/gamma/a").exists()
    assert (root / "usr/bin/busybox").is_file()  # the layer under the first step
    assert (root / "external/repo" / PACKAGES[2]).is_file()


def test_checkpoints_give_the_same_chain(chain):
    """CheckpointEvery = 3: the stack is flattened after every third step; the last step's
    assertions (layering, deletions, env) still hold and its package matches its pin."""
    p = chain.build(
        ["final"], ["--argstr", "prefix", "cp3-", "--arg", "checkpointEvery", "3"], check=False
    )
    assert p.returncode == 0, p.stderr[-3000:]
    closure = subprocess.run(
        [
            "nix-store",
            "-qR",
            chain.drv_with(["--argstr", "prefix", "cp3-", "--arg", "checkpointEvery", "3"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cp3-checkpoint-3.drv" in closure and "cp3-checkpoint-6.drv" in closure
