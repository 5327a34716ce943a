"""The Nix-version guard speaks every time: real Nix 2.8 with its evaluation cache on.

Nix's evaluation cache records a failed attribute. Once it has cached the *names* of the parent
set (`nix search`, shell completion and `nix flake show` do that), a later `nix build` of a
failed output is answered from that record -- "flake output attribute ... is not a derivation"
-- without the message. The guard therefore returns, on an older Nix, a value shaped like a
derivation whose drvPath carries the message (stdenv-bridge/nix-version.nix): Nix re-evaluates a
failed drvPath on every build.

The flake is a copy of this tree as a `path:` flake (a dirty git tree is not locked, so Nix
would not use its evaluation cache at all), with the live-bootstrap input from the pinned
fixture snapshot and nixpkgs replaced by a flake that throws when forced; the cache lives in a
fresh XDG_CACHE_HOME. The planted fault is the same copy with the derivation-shaped value
replaced by a plain throw (the guard as it was): the test shows it loses the message.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import NIX_FLAGS, REPO

PIN_REQUIRED = "2.18"


def _nix_version() -> str:
    out = subprocess.run(["nix", "--version"], capture_output=True, text=True).stdout
    return out.split()[-1]


def _older(a: str, b: str) -> bool:
    return [int(x) for x in a.split(".")[:2]] < [int(x) for x in b.split(".")[:2]]


def _copy_tree(dest: Path) -> Path:
    """The working tree's files (tracked and new, as git lists them) as a plain directory."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if not src.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    return dest


class Flake:
    """The copied flake, run with an evaluation cache of its own."""

    def __init__(self, root: Path, lb: Path, poison: Path, cache: Path) -> None:
        self.root, self.lb, self.poison, self.cache = root, lb, poison, cache

    def nix(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, XDG_CACHE_HOME=str(self.cache))
        return subprocess.run(
            [
                "nix",
                *NIX_FLAGS,
                "--option",
                "eval-cache",
                "true",
                *args,
                "--override-input",
                "live-bootstrap",
                f"path:{self.lb}",
                "--override-input",
                "nixpkgs",
                f"path:{self.poison}",
                "--no-write-lock-file",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    def build(self, attr: str) -> str:
        proc = self.nix("build", "--no-link", f"path:{self.root}#{attr}")
        assert proc.returncode != 0, f"{attr} built on a Nix too old for it"
        return proc.stderr

    def cache_names_of_packages(self) -> None:
        # `nix search` lists packages.x86_64-linux through the cache: its names are recorded
        # (it stops at the first package that forces nixpkgs; the names are cached before that)
        self.nix("search", f"path:{self.root}#packages.x86_64-linux", "no-such-package-name")

    def cached_rows(self) -> int:
        dbs = list((self.cache / "nix/eval-cache-v2").glob("*.sqlite"))
        assert dbs, "Nix wrote no evaluation cache"
        return sum(
            sqlite3.connect(db).execute("select count(*) from Attributes").fetchone()[0]
            for db in dbs
        )


@pytest.fixture(scope="module")
def flakes(nix: str, materialized_pinned: Path, tmp_path_factory: pytest.TempPathFactory):
    found = _nix_version()
    if not _older(found, PIN_REQUIRED):
        pytest.skip(f"this Nix ({found}) is new enough for the pinned nixpkgs: no guard to see")
    base = tmp_path_factory.mktemp("guard")
    lb = materialized_pinned
    poison = base / "no-nixpkgs"
    poison.mkdir()
    (poison / "flake.nix").write_text('{ outputs = _: throw "nixpkgs was forced"; }\n')

    ours = _copy_tree(base / "flake")
    planted = _copy_tree(base / "planted")
    guard = planted / "stdenv-bridge/nix-version.nix"
    text = guard.read_text()
    marker = "speaking = required: why:\n"
    assert marker in text
    # the fault: the guard's value is a plain throw again (as before the fix)
    guard.write_text(
        text.replace(
            marker, "speaking = required: why: fail required why;\n" + "unused = required: why:\n"
        )
    )
    return (
        Flake(ours, lb, poison, base / "cache-ours"),
        Flake(planted, lb, poison, base / "cache-planted"),
    )


def _message(stderr: str) -> bool:
    return f"needs Nix >= {PIN_REQUIRED}" in stderr and f"this is Nix {_nix_version()}" in stderr


@pytest.mark.parametrize(
    "attr",
    [
        "nixos-iso",
        "hello",
        "stdenv",
        "checks.x86_64-linux.no-nixpkgs-bootstrap-in-nixos-iso",
        "checks.x86_64-linux.nixos-iso-boot-uefi-cdrom",
    ],
)
def test_the_guard_speaks_on_every_build_with_the_cache_on(flakes, attr: str) -> None:
    ours, _ = flakes
    ours.cache_names_of_packages()
    rows = ours.cached_rows()
    for _ in range(3):  # the first, the second time, and again
        again = ours.build(attr)
        assert _message(again), again
        assert "is not a derivation" not in again
        assert "nixpkgs was forced" not in again
    assert ours.cached_rows() >= rows > 0  # the cache was on and kept


def test_nix_eval_of_the_drv_path_speaks_twice(flakes) -> None:
    ours, _ = flakes
    for _ in range(2):
        proc = ours.nix("eval", "--raw", f"path:{ours.root}#nixos-iso.drvPath")
        assert proc.returncode != 0
        assert _message(proc.stderr), proc.stderr


def test_a_plain_throw_loses_the_message_the_second_time(flakes) -> None:
    """The planted fault: the same sequence on the guard as it was answers from the cache."""
    _, planted = flakes
    planted.cache_names_of_packages()
    first = planted.build("nixos-iso")
    assert _message(first), first
    second = planted.build("nixos-iso")
    assert not _message(second)
    assert "flake output attribute 'packages.x86_64-linux.nixos-iso' is not a derivation" in second
