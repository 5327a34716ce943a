"""ns-run (nix/runner/ns-run.c) compiled by the host compiler: its own SHA-256, the kernel probe,
the environment dump, and usage errors. The chain builds the same source with M2-Mesoplanet
(packages.lb-runner; exercised by tests/test_runner_real.py)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runner_support import synth

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def ns_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ns-run") / "ns-run"
    src = synth.REPO / "nix" / "runner"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-Werror",
            "-static",
            "-include",
            str(src / "host.h"),
            "-o",
            str(out),
            str(src / "ns-run.c"),
        ],
        check=True,
    )
    return out


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 1000, 123457])
def test_sha256_matches_hashlib(ns_run, tmp_path, size):
    f = tmp_path / "f"
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    f.write_bytes(data)
    out = subprocess.run([ns_run, "sha256", f], capture_output=True, text=True, check=True)
    assert out.stderr.split()[0] == hashlib.sha256(data).hexdigest()


def test_dump_env_drops_shell_bookkeeping(ns_run, tmp_path):
    f = tmp_path / "environ"
    env = {"A": "1", "B": "x y", "_": "/x", "PWD": "/", "SHLVL": "2", "OLDPWD": "/"}
    subprocess.run([ns_run, "dump-env", f], env=env, check=True)
    assert f.read_bytes() == b"A=1\0B=x y\0"


def test_probe_explains_or_confirms(ns_run, tmp_path):
    p = subprocess.run([ns_run, "probe", tmp_path / "probe"], capture_output=True, text=True)
    if p.returncode == 0:
        assert "user namespaces and overlayfs work here" in p.stderr
    else:  # a kernel that forbids it must say what to check
        assert "max_user_namespaces" in p.stderr or "overlayfs" in p.stderr


def test_step_without_spec_is_a_clear_error(ns_run):
    p = subprocess.run([ns_run, "step"], capture_output=True, text=True, env={})
    assert p.returncode == 1
    assert "specPath" in p.stderr
