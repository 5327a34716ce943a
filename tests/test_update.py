"""``update``: move the pinned input to a local git checkout's revision, offline.

The checkout is a synthetic git repository built here from the real fixture data: commit 1 holds
the 2025-02 revision's files, commit 2 the 2026-02 revision's with ``seed/stage0-posix`` as a git
submodule (so submodule handling is exercised), commit 3 a manifest the model cannot parse. The
lock ``update`` writes is compared with what Nix's own git fetcher computes for the same commit.
Every test works on a copy of the repository's flake and steps/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.nixstr import nix_json
from orchestrator.upstream.locate import LockedInput, _from_store
from tests.support.maintain import nar_hash_without_git
from tests.test_bump import copy_repo, make_tarball, tree_digest

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    # submodules from local paths (git >= 2.38 refuses them by default), for git and for Nix
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "protocol.file.allow",
    "GIT_CONFIG_VALUE_0": "always",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout.strip()


def copy_data(snapshot: Path, dest: Path) -> None:
    for p in snapshot.iterdir():
        if p.name in ("COMMIT", "COMMIT.info", "stage0-posix"):
            continue
        if p.is_dir():
            shutil.copytree(p, dest / p.name, symlinks=True)
        else:
            shutil.copy2(p, dest / p.name)


@pytest.fixture(scope="module")
def synthetic(
    tmp_path_factory: pytest.TempPathFactory, old_fixture: Path, pinned_fixture: Path
) -> dict:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("synthetic")
    sub = base / "stage0-posix"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "master")
    shutil.copytree(pinned_fixture / "stage0-posix", sub, dirs_exist_ok=True)
    git(sub, "add", "-A")
    git(sub, "commit", "-q", "-m", "stage0-posix data")

    repo = base / "live-bootstrap"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    copy_data(old_fixture, repo)
    # The 2025-02 revision pinned another stage0-posix. steps/stage0 cannot be regenerated from
    # data (its kaem scripts are code) and generate refuses to keep it for a tree whose
    # stage0-posix moved (tests/test_stage0_record.py), so here commit 1 lists the pinned one.
    pinned_gitlink = next(
        line
        for line in (pinned_fixture / "ls-tree.txt").read_text().splitlines()
        if line.endswith("\tseed/stage0-posix")
    )
    listing = repo / "ls-tree.txt"
    listing.write_text(
        "".join(
            (pinned_gitlink if line.endswith("\tseed/stage0-posix") else line) + "\n"
            for line in listing.read_text().splitlines()
        )
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "2025-02 data")
    c1 = git(repo, "rev-parse", "HEAD")

    git(repo, "rm", "-q", "-r", ".")
    copy_data(pinned_fixture, repo)
    git(repo, "add", "-A")
    git(repo, "submodule", "add", "-q", str(sub), "seed/stage0-posix")
    git(repo, "commit", "-q", "-m", "2026-02 data, stage0-posix as a submodule")
    c2 = git(repo, "rev-parse", "HEAD")

    manifest = repo / "steps/manifest"
    lines = manifest.read_text().split("\n")
    bad_line = next(i for i, line in enumerate(lines) if line.startswith("build: gcc-15.2.0")) + 1
    lines[bad_line - 1] = "compile: gcc-15.2.0"
    manifest.write_text("\n".join(lines))
    git(repo, "commit", "-q", "-am", "a directive the model does not know")
    c3 = git(repo, "rev-parse", "HEAD")
    return {"repo": repo, "sub": sub, "c1": c1, "c2": c2, "c3": c3, "bad_line": bad_line}


def checkout(synthetic: dict, rev: str) -> Path:
    repo = synthetic["repo"]
    git(repo, "checkout", "-q", rev)
    git(repo, "submodule", "update", "-q", "--init", "--recursive")
    return repo


@pytest.fixture
def flake(tmp_path: Path, pinned_fixture: Path, nix: str) -> Path:
    repo = copy_repo(tmp_path / "repo")
    assert (
        main(["generate", "--live-bootstrap", str(pinned_fixture), "--output", str(repo / "steps")])
        == 0
    )
    return repo


def nix_git_fetch(repo: Path, rev: str) -> dict:
    """What Nix's own git fetcher computes for this commit, with submodules."""
    spec = {"type": "git", "url": repo.as_uri(), "rev": rev, "submodules": True}
    expr = (
        f"let t = builtins.fetchTree {nix_json(spec)}; in "
        "{ inherit (t) narHash lastModified revCount; path = toString t.outPath; }"
    )
    proc = subprocess.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command flakes",
            "--option",
            "substituters",
            "",
            "eval",
            "--json",
            "--impure",
            "--expr",
            expr,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def lock_node(flake: Path) -> dict:
    data = json.loads((flake / "flake.lock").read_text())
    return data["nodes"][data["nodes"][data["root"]]["inputs"]["live-bootstrap"]]


def test_update_to_path_between_fixture_revisions(flake: Path, synthetic: dict, capsys) -> None:
    repo = checkout(synthetic, synthetic["c1"])
    assert main(["update", "--to-path", str(repo), "--flake", str(flake), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["new"]["commit"] == synthetic["c1"]
    assert (first["sources_syntax"]["old"], first["sources_syntax"]["new"]) == ("typed", "untyped")

    repo = checkout(synthetic, synthetic["c2"])
    assert main(["update", "--to-path", str(repo), "--flake", str(flake), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the change report: the real changes between 2025-02 and 2026-02
    assert (report["old"]["commit"], report["new"]["commit"]) == (synthetic["c1"], synthetic["c2"])
    assert report["sources_syntax"] == {"old": "untyped", "new": "typed", "changed": True}
    assert {
        "package": "gcc",
        "old": "13.3.0",
        "new": "15.2.0",
        "old_name": "gcc-13.3.0",
        "new_name": "gcc-15.2.0",
    } in report["versions"]
    assert "perl-Devel-Tokenizer-C-0.11-pass1" in {s["attr"] for s in report["steps"]["added"]}
    assert "libatomic_ops-7.6.10-pass1" in {s["attr"] for s in report["steps"]["removed"]}
    assert "gcc-15.2.0.tar.xz" in {d["filename"] for d in report["distfiles"]["added"]}
    assert "bash-5.2.15_0.tar.bz2" in {p["file"] for p in report["package_pins"]["changed"]}

    # the lock: a git+https lock of the new rev, with what Nix's git fetcher computes
    node = lock_node(flake)
    locked = node["locked"]
    fetched = nix_git_fetch(repo, synthetic["c2"])
    assert locked["rev"] == synthetic["c2"] == node["original"]["rev"]
    assert locked["narHash"] == fetched["narHash"]
    assert (
        locked["lastModified"]
        == fetched["lastModified"]
        == int(git(repo, "log", "-1", "--format=%ct"))
    )
    assert locked["revCount"] == fetched["revCount"] == 2
    assert (locked["type"], locked["url"], locked["submodules"]) == (
        "git",
        "https://github.com/fosslinux/live-bootstrap",
        True,
    )
    assert f"rev={synthetic['c2']}" in (flake / "flake.nix").read_text()
    # the submodule is part of the pinned tree, and the store has it: the pin resolves offline
    store = _from_store(LockedInput(locked=locked, original=node["original"]))
    assert store is not None and store == Path(fetched["path"])
    assert (store / "seed/stage0-posix/x86.answers").is_file()
    assert (store / "steps/manifest").read_text() == (repo / "steps/manifest").read_text()

    # steps/ is exactly what generating from that revision gives
    assert (
        main(
            ["generate", "--check", "--live-bootstrap", str(repo), "--output", str(flake / "steps")]
        )
        == 0
    )
    assert json.loads((flake / "steps/upstream.json").read_text())["commit"] == synthetic["c2"]


def test_dry_run_writes_nothing(flake: Path, synthetic: dict, capsys) -> None:
    repo = checkout(synthetic, synthetic["c1"])
    digest = tree_digest(flake)
    assert (
        main(
            [
                "update",
                "--dry-run",
                "--to-path",
                str(repo),
                "--flake",
                str(flake),
                "--format",
                "markdown",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "**`sources` syntax**: typed → untyped" in out.out
    assert "dry run, nothing written" in out.err
    assert tree_digest(flake) == digest


def test_dry_run_accepts_a_data_only_snapshot(flake: Path, old_fixture: Path, capsys) -> None:
    digest = tree_digest(flake)
    assert (
        main(
            ["update", "--dry-run", "--to-path", str(old_fixture), "--flake", str(flake), "--json"]
        )
        == 0
    )
    out = capsys.readouterr()
    assert json.loads(out.out)["new"]["commit"] == (old_fixture / "COMMIT").read_text().split()[0]
    # that revision pinned another stage0-posix, which data cannot regenerate: the report says so
    assert "the update would fail" in out.err and "this tree has stage0-posix" in out.err
    assert tree_digest(flake) == digest
    # without --dry-run it cannot be locked
    assert main(["update", "--to-path", str(old_fixture), "--flake", str(flake)]) == 2
    assert "not a git checkout" in capsys.readouterr().err
    assert tree_digest(flake) == digest


def test_unknown_manifest_syntax_keeps_the_pin(flake: Path, synthetic: dict, capsys) -> None:
    repo = checkout(synthetic, synthetic["c3"])
    digest = tree_digest(flake)
    assert main(["update", "--to-path", str(repo), "--flake", str(flake)]) == 2
    err = capsys.readouterr().err
    assert f"steps/manifest:{synthetic['bad_line']}: unknown directive 'compile:'" in err
    assert tree_digest(flake) == digest


def test_rev_offline_fails_cleanly(flake: Path, capsys) -> None:
    digest = tree_digest(flake)
    # a revision no repository has: Nix cannot fetch it (and offline cannot reach the remote)
    assert main(["update", "--rev", "0" * 39 + "1", "--flake", str(flake)]) != 0
    err = capsys.readouterr().err
    assert "Nix could not fetch live-bootstrap" in err
    assert tree_digest(flake) == digest
    assert main(["update", "--rev", "not-a-rev", "--flake", str(flake)]) == 2
    assert "not a 40-digit" in capsys.readouterr().err
    # the revision is written into flake.nix: a trailing newline must not pass as `$`
    assert main(["update", "--rev", "0" * 40 + "\n", "--flake", str(flake)]) == 2
    assert "not a 40-digit" in capsys.readouterr().err
    assert tree_digest(flake) == digest


def test_stale_override_refuses_the_update(
    flake: Path, synthetic: dict, tmp_path: Path, capsys
) -> None:
    repo = checkout(synthetic, synthetic["c1"])
    assert main(["update", "--to-path", str(repo), "--flake", str(flake)]) == 0
    tar = make_tarball(tmp_path / "gcc-13.4.0.tar.gz", "gcc-13.4.0", "13.4.0\n")
    assert (
        main(
            [
                "bump",
                "gcc-13.3.0",
                "--version",
                "13.4.0",
                "--url",
                tar.as_uri(),
                "--steps",
                str(flake / "steps"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    digest = tree_digest(flake)
    repo = checkout(synthetic, synthetic["c2"])
    assert main(["update", "--to-path", str(repo), "--flake", str(flake)]) == 2
    err = capsys.readouterr().err
    assert "stale override" in err and "bump --drop gcc-13.3.0" in err
    assert tree_digest(flake) == digest
    assert lock_node(flake)["locked"]["rev"] == synthetic["c1"]


CHECKOUT = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")


@pytest.mark.checkout
@pytest.mark.skipif(
    not CHECKOUT,
    reason="LIVE_BOOTSTRAP_CHECKOUT (a live-bootstrap checkout with submodules at the pinned revision) is not set",
)
def test_real_checkout_matches_the_committed_lock(nix: str, tmp_path: Path, capsys) -> None:
    """The real tree hashes to the committed narHash, and its data is what steps/ was made from."""
    from orchestrator.gitcli import is_git_checkout
    from orchestrator.maintain.update import LockedCheckout
    from orchestrator.upstream.locate import read_lock

    path = Path(CHECKOUT or "")
    lock = read_lock()
    if is_git_checkout(path):
        locked = LockedCheckout(path, tmp_path)
        if locked.rev != lock.rev:
            pytest.skip(f"the checkout is at {locked.rev}, not at the pinned {lock.rev}")
        assert (locked.nar_hash, locked.rev_count, locked.last_modified) == (
            lock.locked["narHash"],
            lock.locked["revCount"],
            lock.locked["lastModified"],
        )
    else:
        # a tree without git metadata (e.g. an archive of the pinned revision with submodules)
        assert nar_hash_without_git(path) == lock.locked["narHash"]
    assert main(["diff", "committed", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for section in ("steps", "distfiles", "package_pins"):
        assert all(v == [] for v in report[section].values()), section
    assert report["versions"] == [] and not report["sources_syntax"]["changed"]


def test_a_failure_while_swapping_in_rolls_everything_back(
    flake: Path, synthetic: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """steps/ is swapped in first; if flake.lock then cannot be replaced, steps/ (and flake.nix)
    come back as they were: the three change together or not at all."""
    from orchestrator.maintain import transaction

    repo = checkout(synthetic, synthetic["c1"])
    digest = tree_digest(flake)
    real_rename = os.rename

    def failing_rename(src, dst):  # type: ignore[no-untyped-def]
        if Path(dst).name == "flake.lock" and ".flake.lock.new-" in Path(src).name:
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(transaction.os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left"):
        main(["update", "--to-path", str(repo), "--flake", str(flake)])
    monkeypatch.undo()
    capsys.readouterr()
    assert tree_digest(flake) == digest
    assert sorted(p.name for p in flake.iterdir()) == [
        "flake.lock",
        "flake.nix",
        "nix",
        "stdenv-bridge",
        "steps",
    ]


def test_updating_to_the_pinned_revision_is_a_no_op(flake: Path, synthetic: dict, capsys) -> None:
    repo = checkout(synthetic, synthetic["c2"])
    assert main(["update", "--to-path", str(repo), "--flake", str(flake)]) == 0
    digest = tree_digest(flake)
    assert main(["update", "--to-path", str(repo), "--flake", str(flake)]) == 0
    assert "already pinned" in capsys.readouterr().err
    assert tree_digest(flake) == digest
