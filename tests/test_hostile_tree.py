"""Reading an upstream tree opens regular files only, walks any depth, and refuses malformed
metadata with its file and line: the real pinned fixture, with one hostile thing changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.nar import remove_tree
from tests.conftest import materialize

PKG = "mes-0.27.1"  # a kaem-era build with sources and x86 pins


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, pinned_fixture: Path) -> Path:
    return materialize(pinned_fixture, tmp_path_factory.mktemp("pristine") / "lb")


@pytest.fixture
def lb(pristine: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lb"
    shutil.copytree(pristine, root, symlinks=True)
    yield root
    remove_tree(root)  # before pytest's own (recursive) cleanup meets a deep tree


@pytest.fixture
def data_only(pinned_fixture: Path, tmp_path: Path) -> Path:
    root = tmp_path / "snap"
    shutil.copytree(pinned_fixture, root, symlinks=True)
    return root


def generate(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = tmp_path / "out" / "steps"
    rc = main(["generate", "--live-bootstrap", str(root), "--output", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    if rc != 0:
        assert not out.parent.exists(), "nothing may be written"
    return rc, err


def fifo_guard(fifo: Path) -> None:
    """After 10 s open the FIFO's write end once, so that a reader that blocked on it fails
    the test instead of hanging the suite."""

    def unblock() -> None:
        time.sleep(10)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    threading.Thread(target=unblock, daemon=True).start()


@pytest.mark.parametrize(
    "where",
    ["sources", "checksums", "link target"],
)
def test_a_fifo_is_refused_not_read(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    step = lb / "steps" / PKG
    target = {
        "sources": step / "sources",
        "checksums": step / f"{PKG}.x86.checksums",
        "link target": lb / "steps" / "a-fifo",
    }[where]
    if where == "link target":
        (lb / "steps/env").unlink()
        (lb / "steps/env").symlink_to("a-fifo")
    else:
        target.unlink()
    os.mkfifo(target)
    fifo_guard(target)
    started = time.monotonic()
    rc, err = generate(lb, tmp_path, capsys)
    assert time.monotonic() - started < 9, "generate waited on the FIFO"
    assert rc == 2 and "a FIFO where a file was expected" in err
    assert target.name in err


@pytest.mark.parametrize("kind", ["FIFO", "directory", "dangling symlink"])
def test_a_package_pin_file_that_is_no_file_fails(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    pins = lb / "steps/SHA256SUMS.pkgs"
    pins.unlink()
    if kind == "FIFO":
        os.mkfifo(pins)
        fifo_guard(pins)
    elif kind == "directory":
        pins.mkdir()
    else:
        pins.symlink_to("SHA256SUMS.gone")
    rc, err = generate(lb, tmp_path, capsys)
    assert rc == 2 and "SHA256SUMS.pkgs" in err  # never "no package pins", exit 0
    assert {"FIFO": "a FIFO", "directory": "a directory", "dangling symlink": "missing"}[
        kind
    ] in err


def test_a_device_node_is_refused_not_read(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checksums = lb / "steps" / PKG / f"{PKG}.x86.checksums"
    checksums.unlink()
    try:
        os.mknod(checksums, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # what /dev/zero is
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    rc, err = generate(lb, tmp_path, capsys)
    assert rc == 2 and "a device node where a file was expected" in err


def test_a_deep_directory_under_steps_is_walked(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fd = os.open(lb / "steps" / PKG, os.O_DIRECTORY)
    for _ in range(1200):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)
    rc, err = generate(lb, tmp_path, capsys)
    assert rc == 0, err
    snapshot = (tmp_path / "out/steps/upstream.json").read_text()
    assert f"steps/{PKG}/" + "d/" * 1200 + "leaf" in snapshot


def test_a_file_name_that_is_not_utf8_is_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(os.fsencode(lb / "steps" / PKG) + b"/caf\xe9", "wb"):
        pass
    rc, err = generate(lb, tmp_path, capsys)
    assert rc == 2 and "not UTF-8" in err and "caf\\xe9" in err


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("COMMIT", b"", 1),
        ("COMMIT", b"\xff\xfe\n", 1),
        ("COMMIT", b"not-a-commit\n", 1),
        ("ls-tree.txt", None, 3),  # line 3 made invalid UTF-8
        ("symlinks.txt", b"steps/a -> b\n\xff -> c\n", 2),
    ],
)
def test_malformed_metadata_names_file_and_line(
    data_only: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    line: int,
) -> None:
    p = data_only / name
    if content is None:
        lines = p.read_bytes().split(b"\n")
        lines[line - 1] += b"\xff"
        content = b"\n".join(lines)
    p.write_bytes(content)
    rc, err = generate(data_only, tmp_path, capsys)
    assert rc == 2, err
    assert f"{name}:{line}" in err


def test_pins_never_clamp_dotdot_at_the_root(tmp_path: Path) -> None:
    """A step output's link that climbs above its root: the chroot would clamp it at /, the
    shared resolver refuses it (missing, never ok)."""
    from orchestrator.verify.pins import TREE_DIR, _check_file

    tree = tmp_path / "out" / TREE_DIR
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/lib").mkdir()
    (tree / "usr/lib/real").write_bytes(b"x\n")
    sha = hashlib.sha256(b"x\n").hexdigest()
    (tree / "usr/bin/climb").symlink_to("../../../../usr/lib/real")
    (tree / "usr/bin/rel").symlink_to("../lib/real")
    out = str(tmp_path / "out")
    assert _check_file(out, "/usr/bin/climb", sha) == (None, "missing")
    assert _check_file(out, "/usr/bin/rel", sha) == (sha, "ok")
