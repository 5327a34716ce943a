"""Swapping a staged file or directory into place: the one atomic-replace primitive that
``generate`` (steps/) and the maintainers' transaction (steps/, flake.nix, flake.lock) share.

The old target is renamed aside (to a fresh name beside it, so on the same filesystem), then the
staged one renamed onto the target: each rename is atomic, and if the second fails the old target
is put back, so the target is always either the old one or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def swap_in(staged: Path, target: Path, backup_prefix: str) -> Path | None:
    """``staged`` becomes ``target``; the old target (if any) is kept beside it under a fresh
    name starting with ``backup_prefix``, which is returned (the caller removes it, or renames it
    back to undo)."""
    backup = None
    if target.exists() or target.is_symlink():
        backup = Path(tempfile.mkdtemp(prefix=backup_prefix, dir=target.parent))
        os.rmdir(backup)  # a fresh name nobody else will take
        os.rename(target, backup)
    try:
        os.rename(staged, target)
    except BaseException:
        if backup is not None:
            os.rename(backup, target)
        raise
    return backup


def undo(target: Path, backup: Path | None) -> None:
    """Put back what :func:`swap_in` replaced (``target`` is the new one, or nothing)."""
    if target.exists() or target.is_symlink():
        remove(target)
    if backup is not None:
        os.rename(backup, target)


def remove(path: Path) -> None:
    """Remove a file, a symlink or a directory tree; nothing there is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
