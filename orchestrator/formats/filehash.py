"""The sha256 of a file, streamed (distfiles are hundreds of megabytes): the one place every
stage hashes a file on disk (distfiles, mirrored downloads, pinned step outputs, cached files)."""

from __future__ import annotations

import hashlib
import os

BLOCK = 1 << 21  # read size: large enough that the hash, not the reads, is the cost


def sha256_digest(path: str | os.PathLike[str]) -> bytes:
    """The sha256 of the file at ``path``, as bytes."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.digest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of the file at ``path``, as 64 lowercase hexadecimal digits."""
    return sha256_digest(path).hex()
