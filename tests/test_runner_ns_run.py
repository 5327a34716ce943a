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


# --- the spec grammar (issue 8 item 3): every malformed line is refused, naming it ------------


def run_spec(ns_run, tmp_path, text: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "spec"
    spec.write_text(text)
    return subprocess.run(
        [ns_run, "step"],
        capture_output=True,
        text=True,
        env={"specPath": str(spec), "out": str(tmp_path / "out"), "NIX_BUILD_TOP": str(tmp_path)},
    )


HEX = "ab" * 32
BAD_SPECS = [
    # (spec, the line number, what the message says)
    ("label x\nlayer /a -\nargg /bin/sh\n", 3, "unknown key 'argg'"),
    ("label x\nlayer /a -\nfile step\narg /bin/sh\n", 3, "'file' takes two arguments"),
    (
        "label x\nlayer /a - extra\narg /bin/sh\n",
        2,
        "'layer' takes two arguments, this line has more",
    ),
    ("label x\nlayer /a -\ncwd\narg /bin/sh\n", 3, "'cwd' is missing its argument"),
    ("label x\nlayer /a -\ncwd / /tmp\narg /bin/sh\n", 3, "'cwd' takes one argument"),
    ("label x\nlayer /a -\narg\n", 3, "'arg' is missing its argument"),
    ("label x\nlayer /a -\nno-command now\n", 3, "'no-command' takes no argument"),
    ("label x\nlayer /a -\narg /bin/sh\nexpect abc /x\n", 4, "the hash is not 64 hex digits"),
    ("label x\nlayer /a -\narg /bin/sh\nexpect " + "g" * 64 + " /x\n", 4, "not 64 hex"),
    ("label x\nlayer /a -\narg /bin/sh\nexpect " + HEX + "\n", 4, "the path is missing"),
    ("label x\nlayer /a -\narg /bin/sh\nexpect " + HEX + " x\n", 4, "the path is not absolute"),
    ("label x\nlayer /a -\narg /bin/sh\nchecksums /f\n", 4, "'checksums' takes two arguments"),
    ("label x\nlabel y\nlayer /a -\narg /bin/sh\n", 2, "'label' may appear once"),
    ("label x\nlayer /a -\nsetenv PATH\narg /bin/sh\n", 3, "'setenv' takes NAME=VALUE"),
    ("label x\nlayer /a -\nrequire root\narg /bin/sh\n", 3, "unknown requirement"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_SPECS)
def test_malformed_spec_line_is_refused_naming_it(ns_run, tmp_path, text, line, message):
    p = run_spec(ns_run, tmp_path, text)
    assert p.returncode == 1, p.stderr
    assert f"ns-run: spec line {line}: " in p.stderr
    assert message in p.stderr
    assert text.splitlines()[line - 1] in p.stderr  # the line itself is shown
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_spec_without_command_is_refused(ns_run, tmp_path):
    """A misspelt `arg` used to leave a step that ran nothing and succeeded."""
    p = run_spec(ns_run, tmp_path, "label x\nlayer /a -\nexpect " + HEX + " /x\n")
    assert p.returncode == 1
    assert "no command" in p.stderr and "'arg' lines" in p.stderr


def test_spec_with_two_commands_is_refused(ns_run, tmp_path):
    p = run_spec(ns_run, tmp_path, "label x\nlayer /a -\nflatten 1\narg /bin/sh\n")
    assert p.returncode == 1
    assert "exclude each other" in p.stderr


def test_well_formed_spec_passes_the_grammar(ns_run, tmp_path):
    """Comments, blank lines, a rest-of-line arg with spaces: parsed, then the run itself starts
    (and here stops at the missing layer, with the kernel's own error text)."""
    text = f"# a comment\n\nlabel a step\nlayer {tmp_path}/nope -\narg /bin/sh -c true\n"
    p = run_spec(ns_run, tmp_path, text)
    assert "spec line" not in p.stderr
    assert "ns-run: ==== a step ====" in p.stderr


def test_host_build_reports_real_errno_text(ns_run, tmp_path):
    """The host build used to report every failed read or write as EPERM."""
    p = subprocess.run([ns_run, "sha256", tmp_path / "missing"], capture_output=True, text=True)
    assert p.returncode == 1
    assert "ENOENT (no such file or directory)" in p.stderr
    d = tmp_path / "dir"
    d.mkdir()
    p = subprocess.run([ns_run, "sha256", d], capture_output=True, text=True)
    assert p.returncode == 1
    assert "EISDIR (is a directory)" in p.stderr
    # a failing write (the host's write() returns -1 and sets errno)
    p = subprocess.run(
        [ns_run, "dump-env", "/dev/full"], capture_output=True, text=True, env={"A": "1"}
    )
    assert p.returncode == 1
    assert "cannot write /dev/full: ENOSPC (no space left on device)" in p.stderr
