"""maintain support: the narHash of a tree as Nix's git fetcher with submodules stores it (every
``.git`` left out), to compare an archive of the pinned revision with ``flake.lock``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from orchestrator.nixcli import hash_path as nar_hash


def nar_hash_without_git(path: Path) -> str:
    """The narHash of a tree as Nix's git fetcher stores it: every ``.git`` left out."""
    if not any(p.name == ".git" for p in path.rglob(".git")):
        return nar_hash(path)
    with tempfile.TemporaryDirectory(prefix="orchestrator-nar-") as tmp:
        copy = Path(tmp) / "source"
        shutil.copytree(path, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return nar_hash(copy)
