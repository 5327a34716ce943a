"""Depth is bounded by the file system, never by Python's recursion limit: NAR writing, hashing,
reading, diffing and removing a tree are iterative and equal to Nix's at any depth it handles."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.binary_cache import BinaryCache
from orchestrator.formats.hashes import Hash
from orchestrator.formats.nar import (
    MAGIC,
    _str,
    dump_nar,
    nar_bytes,
    nar_hash,
    remove_tree,
    unpack_nar,
)
from orchestrator.formats.narinfo import parse_narinfo
from orchestrator.verify.engine import Verifier
from orchestrator.verify.nardiff import diff_trees
from tests.helpers_cache import needs_nix, nix

DEPTH = 1500  # deeper than Python's recursion limit, shallower than PATH_MAX


@pytest.fixture(autouse=True)
def remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """Pytest's own cleanup (shutil.rmtree) recurses: remove what the test made first."""
    yield
    for p in tmp_path.iterdir():
        remove_tree(p)


def deep_tree(root: Path, depth: int = DEPTH) -> Path:
    """``root/d/d/.../d`` with a file and a link at the bottom, made without recursion."""
    root.mkdir()
    fd = os.open(root, os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=fd), "wb") as f:
            f.write(b"bottom\n")
        os.symlink("f", "l", dir_fd=fd)
    finally:
        os.close(fd)
    return root


def deep_nar(depth: int) -> bytes:
    """A NAR nested ``depth`` directories deep, written token by token (no tree on disk)."""
    out = io.BytesIO()
    out.write(MAGIC)
    head = _str(b"(") + _str(b"type") + _str(b"directory")
    entry = _str(b"entry") + _str(b"(") + _str(b"name") + _str(b"d") + _str(b"node")
    for _ in range(depth):
        out.write(head + entry)
    out.write(_str(b"(") + _str(b"type") + _str(b"symlink") + _str(b"target") + _str(b"x"))
    out.write(_str(b")"))
    for _ in range(depth):
        out.write(_str(b")") + _str(b")"))  # the entry, the directory
    return out.getvalue()


def test_depth_beyond_recursion_limit() -> None:
    assert sys.getrecursionlimit() < DEPTH


@needs_nix
def test_deep_tree_hash_equals_nix_hash_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = deep_tree(tmp_path / "deep")
    ours = nar_hash(tree)
    theirs = nix("hash", "path", "--type", "sha256", "--base32", str(tree)).stdout.strip()
    assert ours.nar_hash.to_nix32().removeprefix("sha256:") == theirs
    # the CLI commands, likewise
    assert main(["nar", "hash", str(tree)]) == 0
    assert theirs in capsys.readouterr().out
    dumped = subprocess.run(["nix-store", "--dump", str(tree)], capture_output=True, check=True)
    assert nar_bytes(tree) == dumped.stdout


def test_deep_nar_round_trip(tmp_path: Path) -> None:
    tree = deep_tree(tmp_path / "deep")
    data = nar_bytes(tree)
    unpack_nar(io.BytesIO(data), tmp_path / "copy")
    assert nar_bytes(tmp_path / "copy") == data
    assert diff_trees(tree, tmp_path / "copy").files == []
    remove_tree(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_deep_trees_diff_iteratively(tmp_path: Path) -> None:
    a, b = deep_tree(tmp_path / "a"), deep_tree(tmp_path / "b")
    bottom = Path(*["d"] * DEPTH)
    (b / bottom / "f").chmod(0o644)
    (b / bottom / "f").write_bytes(b"bottoM\n")
    got = {(f.path, f.change) for f in diff_trees(a, b).files}
    assert got == {(f"{bottom}/f", "executable"), (f"{bottom}/f", "content")}


def test_nar_deeper_than_the_file_system_allows_is_an_oserror_and_cleaned(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "out"
    with pytest.raises(OSError):  # ENAMETOOLONG past PATH_MAX: never RecursionError
        unpack_nar(io.BytesIO(deep_nar(5000)), dest)
    assert dest.exists()
    remove_tree(dest)
    assert not dest.exists()


def test_diff_of_a_hostile_deep_nar_leaves_no_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nar = deep_nar(5000)
    cache = tmp_path / "cache"
    (cache / "nar").mkdir(parents=True)
    (cache / "nar" / "deep.nar").write_bytes(nar)
    info = parse_narinfo(
        f"StorePath: /nix/store/{'0' * 32}-deep\nURL: nar/deep.nar\nCompression: none\n"
        f"NarHash: {Hash.of_bytes(nar)}\nNarSize: {len(nar)}\nReferences: \n"
    )
    ours = tmp_path / "ours"
    ours.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    async def go() -> str | None:
        async with BinaryCache(cache.as_uri()) as c:
            report = await Verifier(c, [], diff=True, diff_tool="builtin")._diff_with_cache(
                str(ours), {}, info
            )
            return report.error

    error = asyncio.run(go())
    assert error is not None and "too long" in error.lower()
    assert list(scratch.iterdir()) == []


def test_dump_into_a_file(tmp_path: Path) -> None:
    tree = deep_tree(tmp_path / "deep", depth=10)
    with open(tmp_path / "x.nar", "wb") as f:
        size = dump_nar(tree, f.write)
    assert size == (tmp_path / "x.nar").stat().st_size
