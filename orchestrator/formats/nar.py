"""NAR (Nix ARchive) serialisation in pure Python, byte-for-byte equal to Nix's.

Format (every string is a little-endian u64 length, the bytes, zero padding to 8)::

    "nix-archive-1" node
    node      = "(" "type" ( regular | symlink | directory ) ")"
    regular   = "regular" [ "executable" "" ] "contents" <bytes>
    symlink   = "symlink" "target" <target>
    directory = "directory" { "entry" "(" "name" <name> "node" node ")" }   (names sorted as bytes)

A file is executable when its owner-execute bit is set (Nix ignores the other bits). Anything
other than a regular file, a symlink or a directory is refused, as Nix refuses it.

``dump_nar`` streams the archive into a callable (``hashlib`` ``update``, a file's ``write``, a
rewriter). Small tokens and small files are gathered in one buffer so the sink sees few, large
calls; large files go straight from a reused read buffer to the sink.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict

from orchestrator.formats.hashes import Hash

Sink = Callable[[bytes | bytearray | memoryview], object]

_U64 = 8
_FLUSH_AT = 1 << 17  # bytes gathered before the sink is called
_BIG_FILE = 1 << 18  # files larger than this are streamed in chunks
_CHUNK = 1 << 21  # read size for large files


class NarError(ValueError):
    """A tree that cannot be archived or an archive that does not parse."""


def _int(n: int) -> bytes:
    return n.to_bytes(_U64, "little")


def _pad(n: int) -> bytes:
    return b"\0" * ((-n) % 8)


def _str(b: bytes) -> bytes:
    return _int(len(b)) + b + _pad(len(b))


MAGIC = _str(b"nix-archive-1")
_OPEN = _str(b"(")
_CLOSE = _str(b")")
_TYPE = _str(b"type")
_REGULAR = _OPEN + _TYPE + _str(b"regular")
_EXEC = _str(b"executable") + _str(b"")
_CONTENTS = _str(b"contents")
_SYMLINK = _OPEN + _TYPE + _str(b"symlink") + _str(b"target")
_DIRECTORY = _OPEN + _TYPE + _str(b"directory")
_ENTRY = _str(b"entry") + _OPEN + _str(b"name")
_NODE = _str(b"node")
_PADS = [b"\0" * i for i in range(8)]


class NarDigest(BaseModel):
    """What ``nix path-info`` reports about a path: its NAR hash and NAR size."""

    model_config = ConfigDict(frozen=True)

    nar_hash: Hash
    nar_size: int


@dataclass(slots=True)
class _OpenDir:
    """A directory being archived: its path with a trailing ``/``, its sorted names, and the
    index of the next one to write."""

    prefix: bytes
    names: list[bytes]
    next: int = 0


@dataclass(slots=True)
class _Unpacking:
    """A directory being unpacked, and the last entry name read in it (names must rise)."""

    path: bytes
    previous: bytes | None = None


class _Writer:
    __slots__ = ("buf", "chunk", "sink", "size")

    def __init__(self, sink: Sink) -> None:
        self.buf = bytearray()
        self.sink = sink
        self.size = 0
        self.chunk: bytearray | None = None

    def flush(self) -> None:
        if self.buf:
            self.size += len(self.buf)
            self.sink(self.buf)
            self.buf = bytearray()

    def tree(self, root: bytes) -> None:
        """The NAR of ``root``: depth first, names sorted as bytes, with an explicit stack (no
        recursion on the tree's depth: any depth the file system holds is archived)."""
        stack: list[_OpenDir] = []  # one frame per directory being written
        self.node(root, stack)
        while stack:
            frame = stack[-1]
            prefix, names, i = frame.prefix, frame.names, frame.next
            if i == len(names):
                stack.pop()
                self.buf += _CLOSE  # the directory node
                if stack:
                    self.buf += _CLOSE  # its entry in the parent
            else:
                frame.next = i + 1
                buf = self.buf
                buf += _ENTRY
                buf += _str(names[i])
                buf += _NODE
                if not self.node(prefix + names[i], stack):
                    self.buf += _CLOSE  # the entry of a file or symlink
            if len(self.buf) >= _FLUSH_AT:
                self.flush()

    def node(self, path: bytes, stack: list[_OpenDir]) -> bool:
        """Write the node of ``path``; for a directory only its head, and push its frame
        (True)."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise NarError(f"cannot read {os.fsdecode(path)}: {exc.strerror}") from None
        mode = st.st_mode
        buf = self.buf
        if stat.S_ISREG(mode):
            buf += _REGULAR
            if mode & stat.S_IXUSR:
                buf += _EXEC
            buf += _CONTENTS
            size = st.st_size
            buf += size.to_bytes(_U64, "little")
            if size <= _BIG_FILE:
                data = _read_small(path, size)
                buf += data
                buf += _PADS[(-size) % 8]
            else:
                self.flush()
                self._stream(path, size)
                buf = self.buf
                buf += _PADS[(-size) % 8]
            buf += _CLOSE
        elif stat.S_ISLNK(mode):
            target = os.readlink(path)
            buf += _SYMLINK
            buf += _str(target)
            buf += _CLOSE
        elif stat.S_ISDIR(mode):
            buf += _DIRECTORY
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                raise NarError(f"cannot list {os.fsdecode(path)}: {exc.strerror}") from None
            prefix = path + b"/" if not path.endswith(b"/") else path
            stack.append(_OpenDir(prefix, names))
            return True
        else:
            raise NarError(f"{os.fsdecode(path)} has an unsupported file type (mode {mode:o})")
        if len(self.buf) >= _FLUSH_AT:
            self.flush()
        return False

    def _stream(self, path: bytes, size: int) -> None:
        if self.chunk is None:
            self.chunk = bytearray(_CHUNK)
        view = memoryview(self.chunk)
        left = size
        with open(path, "rb", buffering=0) as f:
            while left:
                n = f.readinto(view[: min(_CHUNK, left)])
                if not n:
                    raise NarError(f"{os.fsdecode(path)} shrank while being archived")
                self.sink(view[:n])
                left -= n
            if f.read(1):
                raise NarError(f"{os.fsdecode(path)} grew while being archived")
        self.size += size


def _read_small(path: bytes, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, size + 1)
        while len(data) < size:  # short reads are legal; loop until EOF
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) != size:
        raise NarError(f"{os.fsdecode(path)} changed size while being archived")
    return data


def dump_nar(path: str | os.PathLike[str] | bytes, sink: Sink) -> int:
    """Serialise ``path`` as a NAR into ``sink``; returns the NAR size in bytes.

    The sink must consume each buffer before returning (the buffer may be reused)."""
    w = _Writer(sink)
    w.buf += MAGIC
    w.tree(os.fsencode(path))
    w.flush()
    return w.size


def nar_hash(path: str | os.PathLike[str] | bytes, algo: str = "sha256") -> NarDigest:
    """NAR hash and size of ``path``, equal to ``nix hash path`` / ``nix path-info``."""
    h = hashlib.new(algo)
    size = dump_nar(path, h.update)
    return NarDigest(nar_hash=Hash(algo=algo, digest=h.digest()), nar_size=size)


def nar_bytes(path: str | os.PathLike[str] | bytes) -> bytes:
    """The whole NAR in memory (small trees and tests only)."""
    out = bytearray()
    dump_nar(path, out.extend)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Reading


class _Reader:
    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.offset = 0

    def exact(self, n: int) -> bytes:
        data = self.src.read(n)
        while len(data) < n:
            more = self.src.read(n - len(data))
            if not more:
                raise NarError(f"archive truncated at byte {self.offset + len(data)}")
            data += more
        self.offset += n
        return data

    def read_int(self) -> int:
        return int.from_bytes(self.exact(_U64), "little")

    def padding(self, n: int) -> None:
        pad = (-n) % 8
        if pad and self.exact(pad) != _PADS[pad]:
            raise NarError(f"non-zero padding at byte {self.offset - pad}")

    def read_str(self, limit: int = 1 << 16) -> bytes:
        n = self.read_int()
        if n > limit:
            raise NarError(f"string of {n} bytes at byte {self.offset} is too long")
        data = self.exact(n)
        self.padding(n)
        return data

    def expect(self, token: bytes) -> None:
        got = self.read_str()
        if got != token:
            raise NarError(f"expected {token!r} at byte {self.offset}, got {got[:40]!r}")


def unpack_nar(src: BinaryIO, dest: str | os.PathLike[str]) -> None:
    """Unpack a NAR read from ``src`` into ``dest`` (which must not exist), validating it as
    Nix does: magic, sorted unique entry names, no ``/``, ``.``, ``..`` or NUL in names.

    Iterative: a NAR nested any number of levels deep is unpacked (or refused by the file
    system, as an OSError) without recursion."""
    r = _Reader(src)
    r.expect(b"nix-archive-1")
    stack: list[_Unpacking] = []  # one frame per directory being unpacked
    pending: bytes | None = os.fsencode(dest)  # the next node to read
    while True:
        if pending is not None:
            is_dir = _unpack_head(r, pending)
            if is_dir:
                stack.append(_Unpacking(pending))
            elif not stack:
                return  # the archive was a single file or symlink
            else:
                r.expect(b")")  # the entry of that file in its directory
            pending = None
        frame = stack[-1]
        tag = r.read_str()
        if tag == b")":
            os.chmod(frame.path, 0o555)
            stack.pop()
            if not stack:
                return
            r.expect(b")")  # the entry of that directory in its parent
            continue
        if tag != b"entry":
            raise NarError(f"expected 'entry' or ')' at byte {r.offset}, got {tag[:40]!r}")
        r.expect(b"(")
        r.expect(b"name")
        name = r.read_str()
        if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
            raise NarError(f"invalid entry name {name!r} at byte {r.offset}")
        previous = frame.previous
        if previous is not None and name <= previous:
            raise NarError(f"entry {name!r} is not sorted after {previous!r}")
        frame.previous = name
        r.expect(b"node")
        pending = frame.path + b"/" + name


def _unpack_head(r: _Reader, path: bytes) -> bool:
    """Read one node: a file or symlink whole, a directory up to its entries (True)."""
    r.expect(b"(")
    r.expect(b"type")
    kind = r.read_str()
    if kind == b"regular":
        tag = r.read_str()
        executable = False
        if tag == b"executable":
            if r.read_str() != b"":
                raise NarError(f"bad executable marker at byte {r.offset}")
            executable = True
            tag = r.read_str()
        if tag != b"contents":
            raise NarError(f"expected 'contents' at byte {r.offset}, got {tag[:40]!r}")
        size = r.read_int()
        with open(path, "xb") as out:
            left = size
            while left:
                chunk = r.src.read(min(left, _CHUNK))
                if not chunk:
                    raise NarError(f"archive truncated inside {os.fsdecode(path)}")
                out.write(chunk)
                left -= len(chunk)
                r.offset += len(chunk)
        r.padding(size)
        os.chmod(path, 0o555 if executable else 0o444)
        r.expect(b")")
        return False
    if kind == b"symlink":
        r.expect(b"target")
        os.symlink(r.read_str(limit=1 << 20), path)
        r.expect(b")")
        return False
    if kind == b"directory":
        os.mkdir(path)
        return True
    raise NarError(f"unknown node type {kind[:40]!r} at byte {r.offset}")


def _dirs_preorder(root: bytes) -> list[bytes]:
    """Every directory below ``root`` (itself included), parents first; links not followed.
    Each is made writable by its owner on the way, so that it can be listed and emptied."""
    out: list[bytes] = []
    todo = [root]
    while todo:
        d = todo.pop()
        os.chmod(d, stat.S_IMODE(os.lstat(d).st_mode) | stat.S_IRWXU)
        out.append(d)
        with os.scandir(d) as it:
            todo.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
    return out


def make_writable(root: str | os.PathLike[str]) -> None:
    """Give the owner write access to an unpacked tree so it can be deleted (any depth)."""
    root_b = os.fsencode(root)
    if not os.path.isdir(root_b) or os.path.islink(root_b):
        return
    _dirs_preorder(root_b)


def remove_tree(root: str | os.PathLike[str]) -> None:
    """Delete a tree an unpacked NAR left (read-only directories, any depth: no recursion, as
    ``shutil.rmtree`` has on Python 3.11); links are removed, never followed. Best effort
    where the file system refuses (what cannot be removed stays; nothing raises)."""
    root_b = os.fsencode(root)
    try:
        if not stat.S_ISDIR(os.lstat(root_b).st_mode):
            os.unlink(root_b)
            return
        dirs = _dirs_preorder(root_b)
    except OSError:
        return
    for d in reversed(dirs):  # children before their parents
        try:
            with os.scandir(d) as it:
                for e in it:
                    if not e.is_dir(follow_symlinks=False):
                        os.unlink(e.path)
            os.rmdir(d)
        except OSError:
            continue
