"""The pure-Python NAR serialiser against the real ``nix hash path`` and ``nix-store --dump``."""

from __future__ import annotations

import io
import os
import random
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.nar import NarError, nar_bytes, nar_hash, unpack_nar
from tests.support.cache import needs_nix, nix


def nix_hash_path(*paths: Path) -> list[str]:
    out = nix("hash", "path", "--type", "sha256", "--base32", *map(str, paths)).stdout.split()
    return [f"sha256:{h}" for h in out]


def make_tricky_tree(root: Path) -> Path:
    root.mkdir()
    (root / "empty-dir").mkdir()
    (root / "empty-file").write_bytes(b"")
    (root / "seven").write_bytes(b"1234567")  # padding 1
    (root / "eight").write_bytes(b"12345678")  # no padding
    (root / "nine").write_bytes(b"123456789")  # padding 7
    exe = root / "bin" / "run"
    exe.parent.mkdir()
    exe.write_bytes(b"#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    only_user_x = root / "bin" / "ux"
    only_user_x.write_bytes(b"x")
    only_user_x.chmod(0o700)
    group_x_only = root / "bin" / "gx"  # Nix looks at the owner bit only
    group_x_only.write_bytes(b"x")
    group_x_only.chmod(0o654)
    (root / "link-rel").symlink_to("bin/run")
    (root / "link-abs").symlink_to("/nix/store/00000000000000000000000000000000-x")
    (root / "link-dangling").symlink_to("does/not/exist")
    (root / "link-dir").symlink_to("empty-dir")
    (root / "ünïcödé-ファイル").write_text("ü\n", encoding="utf-8")
    (root / ("L" * 255)).write_bytes(b"long name")
    deep = root
    for i in range(30):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(b"leaf")
    # sort order is byte order: uppercase before lowercase, '-' and '.' before letters
    for name in ("B", "a", "a-b", "a.b", "a0", "Z", "_", "~"):
        (root / "order" / name).parent.mkdir(exist_ok=True)
        (root / "order" / name).write_bytes(name.encode())
    big = root / "big.bin"
    rng = random.Random(3)
    big.write_bytes(rng.randbytes(3 * (1 << 20) + 5))  # above the streaming threshold
    return root


@needs_nix
def test_tricky_tree_equals_nix(tmp_path: Path) -> None:
    root = make_tricky_tree(tmp_path / "t")
    assert [str(nar_hash(root).nar_hash)] == nix_hash_path(root)


@needs_nix
def test_single_file_and_symlink_roots(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"contents\n")
    x = tmp_path / "exe"
    x.write_bytes(b"#!x")
    x.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to("file")
    empty = tmp_path / "empty"
    empty.mkdir()
    ours = [str(nar_hash(p).nar_hash) for p in (f, x, link, empty)]
    assert ours == nix_hash_path(f, x, link, empty)


@needs_nix
@pytest.mark.parametrize("seed", range(6))
def test_random_trees_equal_nix(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / f"r{seed}"
    root.mkdir()
    dirs = [root]
    alphabet = "abcXYZ019-_.é€ "
    for i in range(rng.randint(20, 80)):
        parent = rng.choice(dirs)
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) + str(i)
        p = parent / name
        kind = rng.random()
        if kind < 0.2:
            p.mkdir()
            dirs.append(p)
        elif kind < 0.3:
            p.symlink_to("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
        else:
            size = rng.choice([0, 1, 7, 8, 9, 63, 64, 65, 4096, rng.randint(0, 100_000)])
            p.write_bytes(rng.randbytes(size))
            if rng.random() < 0.3:
                p.chmod(0o755)
    assert [str(nar_hash(root).nar_hash)] == nix_hash_path(root)


@needs_nix
def test_large_file_sizes_equal_nix(tmp_path: Path) -> None:
    rng = random.Random(11)
    paths = []
    for size in ((1 << 18) - 1, 1 << 18, (1 << 18) + 1, (1 << 21) + 3, 9 * (1 << 20) + 7):
        p = tmp_path / f"f{size}"
        p.write_bytes(rng.randbytes(size))
        paths.append(p)
    assert [str(nar_hash(p).nar_hash) for p in paths] == nix_hash_path(*paths)


@needs_nix
def test_bytes_equal_nix_store_dump(tmp_path: Path) -> None:
    root = make_tricky_tree(tmp_path / "t")
    dumped = subprocess.run(["nix-store", "--dump", str(root)], capture_output=True, check=True)
    ours = nar_bytes(root)
    assert ours == dumped.stdout
    assert nar_hash(root).nar_size == len(dumped.stdout)


@needs_nix
def test_store_path_size_equals_path_info(tmp_path: Path) -> None:
    import json

    src = make_tricky_tree(tmp_path / "t")
    (src / "big.bin").unlink()
    added = nix("store", "add-path", str(src)).stdout.strip()
    info = json.loads(nix("path-info", "--json", added).stdout)[0]
    d = nar_hash(added)
    assert d.nar_hash.to_sri() == info["narHash"]
    assert d.nar_size == info["narSize"]


@needs_nix
def test_unpack_roundtrip(tmp_path: Path) -> None:
    root = make_tricky_tree(tmp_path / "t")
    data = nar_bytes(root)
    unpack_nar(io.BytesIO(data), tmp_path / "u")
    assert nix_hash_path(tmp_path / "u") == nix_hash_path(root)
    assert os.access(tmp_path / "u" / "bin" / "run", os.X_OK)
    assert os.readlink(tmp_path / "u" / "link-dangling") == "does/not/exist"


def test_unpack_refuses_bad_archives(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_bytes(b"x")
    (d / "b").write_bytes(b"y")
    good = nar_bytes(d)
    with pytest.raises(NarError, match="truncated"):
        unpack_nar(io.BytesIO(good[:-20]), tmp_path / "u1")
    with pytest.raises(NarError, match="expected"):
        unpack_nar(io.BytesIO(good.replace(b"nix-archive-1", b"nix-archive-2")), tmp_path / "u2")
    swapped = good.replace(b"\x01\0\0\0\0\0\0\0a", b"\x01\0\0\0\0\0\0\0c")
    with pytest.raises(NarError, match="sorted"):
        unpack_nar(io.BytesIO(swapped), tmp_path / "u3")
    dotdot = good.replace(b"\x01\0\0\0\0\0\0\0a\0\0\0\0\0\0\0", b"\x02\0\0\0\0\0\0\0..\0\0\0\0\0\0")
    with pytest.raises(NarError, match="invalid entry name"):
        unpack_nar(io.BytesIO(dotdot), tmp_path / "u4")


def test_fifo_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.mkfifo(d / "pipe")
    with pytest.raises(NarError, match="unsupported file type"):
        nar_hash(d)


@needs_nix
def test_cli_nar_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tricky_tree(tmp_path / "t")
    assert main(["nar", "hash", str(root)]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == nix_hash_path(root)[0]
    assert int(out[1]) == len(nar_bytes(root))
    assert main(["nar", "hash", "--json", "--format", "sri", str(root)]) == 0
    import json

    row = json.loads(capsys.readouterr().out)[0]
    assert (
        row["narHash"] == nix("hash", "path", "--type", "sha256", "--sri", str(root)).stdout.strip()
    )


def test_cli_nar_hash_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nar", "hash", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
