"""Shared test fixtures: the real upstream data beside the repository, and real Nix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
LB_FIXTURES = FIXTURES / "live-bootstrap"
PINNED = "984b8322"
OLD = "01257b3b"
NIX_FLAGS = [
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
]


def fixture_dir(short: str) -> Path:
    path = LB_FIXTURES / short
    if not path.is_dir():
        pytest.fail(
            f"fixture data missing: {path} (the shared fixtures must sit beside the repository)"
        )
    return path


@pytest.fixture(scope="session")
def pinned_fixture() -> Path:
    return fixture_dir(PINNED)


@pytest.fixture(scope="session")
def old_fixture() -> Path:
    return fixture_dir(OLD)


@pytest.fixture(scope="session")
def nix() -> str:
    """The nix binary; CI installs it, so there its absence is a failure, not a skip."""
    found = shutil.which("nix")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("nix is not installed (CI must install nix-bin)")
        pytest.skip("nix is not installed")
    return found


def run_nix(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["nix", *NIX_FLAGS, *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"nix {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return proc


def materialize(snapshot: Path, dest: Path) -> Path:
    """A file tree shaped like the real checkout, from a data-only snapshot.

    Real data files are copied; files that ls-tree.txt only lists (upstream code, which the
    fixtures do not carry) become small placeholder files with the listed mode; symlinks point
    where symlinks.txt says. Enough for evaluation, never for building.
    """
    targets = {}
    symlinks = snapshot / "symlinks.txt"
    if symlinks.is_file():
        for line in symlinks.read_text().splitlines():
            if " -> " in line:
                src, dst = line.split(" -> ", 1)
                targets[src] = dst
    for line in (snapshot / "ls-tree.txt").read_text().splitlines():
        meta, _, path = line.partition("\t")
        mode = meta.split()[0]
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        if mode == "160000":
            out.mkdir(exist_ok=True)
        elif mode == "120000":
            out.symlink_to(targets.get(path, "missing-target"))
        else:
            real = snapshot / path
            if real.is_file():
                shutil.copyfile(real, out)
            else:
                out.write_text(f"placeholder for {path}: not part of the data-only fixture\n")
            out.chmod(0o755 if mode == "100755" else 0o644)
    return dest


@pytest.fixture(scope="session")
def materialized_pinned(tmp_path_factory: pytest.TempPathFactory, pinned_fixture: Path) -> Path:
    return materialize(pinned_fixture, tmp_path_factory.mktemp("lb-pinned"))


def pinned_source_or_skip() -> Path:
    """The pinned live-bootstrap input (flake.lock) in the Nix store, or a skip saying why not.

    Nix answers a locked input with a narHash from the store, offline, only when the store
    already has it. When it does not, a checkout named by LIVE_BOOTSTRAP_CHECKOUT whose NAR hash
    is the locked one is added to the store (the same path the fetcher would produce). Anything
    else is a skip with the reason, never a failure: a fresh offline machine cannot fetch it.
    """
    from orchestrator.upstream.locate import _from_store, read_lock

    shutil.which("nix") or pytest.skip("nix is not installed")
    lock = read_lock(REPO)
    found = _from_store(lock)
    if found is not None:
        return found
    why = (
        f"the pinned live-bootstrap source (rev {lock.rev}) is not in the Nix store and cannot be "
        "fetched offline"
    )
    checkout = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not checkout:
        pytest.skip(f"{why}; set LIVE_BOOTSTRAP_CHECKOUT to a checkout of it with submodules")
    got = run_nix("hash", "path", checkout, check=False)
    want = lock.locked.get("narHash")
    if got.returncode != 0 or got.stdout.strip() != want:
        pytest.skip(
            f"{why}; LIVE_BOOTSTRAP_CHECKOUT ({checkout}) is not it: NAR hash "
            f"{got.stdout.strip() or got.stderr.strip()[-200:]}, the lock says {want}"
        )
    run_nix("store", "add-path", "--name", "source", checkout)
    found = _from_store(lock)
    if found is None:
        pytest.fail(f"added {checkout} to the store, but Nix still does not resolve the input")
    return found


@pytest.fixture(scope="session")
def pinned_source() -> Path:
    """The pinned live-bootstrap input in the store (see pinned_source_or_skip)."""
    return pinned_source_or_skip()


def flake_package_names(system: str = "x86_64-linux") -> list[str] | None:
    """Attribute names of the repository flake's packages, or None when it cannot evaluate
    (e.g. the pinned live-bootstrap input is not in the store and there is no network)."""
    proc = run_nix(
        "eval",
        "--json",
        f"{REPO}#packages.{system}",
        "--apply",
        "builtins.attrNames",
        check=False,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/golden/*/*/expected/ from the code (review the diff before committing)",
    )
