"""Access to a live-bootstrap tree: a real checkout, or a data-only snapshot.

A data-only snapshot (like the test fixtures) holds the real data files (manifest, sources,
checksums, env) plus ``ls-tree.txt`` -- ``git ls-tree -r`` output listing every path with its
mode -- and ``symlinks.txt``. Code files are only *listed* there, so existence and mode checks
go through the listing while text is read from disk. Both kinds answer the same questions, so
everything downstream is agnostic of which one it reads.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ParseError, TreeError

EntryKind = Literal["file", "executable", "symlink", "submodule"]
_MODES: dict[str, EntryKind] = {
    "100644": "file",
    "100755": "executable",
    "120000": "symlink",
    "160000": "submodule",
}


# The committed data snapshot in steps/ that read-only commands use on a fresh clone.
SNAPSHOT_FILE = "upstream.json"


class TreeEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    kind: EntryKind
    object_id: str
    target: str | None = None  # symlink target, when known


class SourceTree(BaseModel):
    """A live-bootstrap tree rooted at ``root``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    root: Path
    data_only: bool
    commit: str | None = None
    entries: dict[str, TreeEntry] | None = None  # only for data-only snapshots
    contents: dict[str, str] | None = None  # in-memory snapshot (steps/upstream.json)

    @classmethod
    def open(cls, root: str | Path, commit: str | None = None) -> SourceTree:
        root = Path(root)
        if not (root / "steps" / "manifest").is_file():
            raise TreeError(
                "not a live-bootstrap tree (no steps/manifest)",
                file=root,
                hint="pass a live-bootstrap checkout or a data-only snapshot with ls-tree.txt",
            )
        listing = root / "ls-tree.txt"
        data_only = listing.is_file() and not (root / "seed" / "stage0-posix" / "kaem.x86").exists()
        if commit is None:
            commit = _read_commit(root)
        entries = _read_listing(listing, root / "symlinks.txt") if data_only else None
        return cls(root=root, data_only=data_only, commit=commit, entries=entries)

    # -- queries -------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        path = path.strip("/")
        if self.entries is not None:
            if path in self.entries:
                return True
            prefix = path + "/"
            return any(p.startswith(prefix) for p in self.entries)
        return os.path.lexists(self.root / path)

    def is_dir(self, path: str) -> bool:
        path = path.strip("/")
        if self.entries is not None:
            entry = self.entries.get(path)
            if entry is not None and entry.kind == "symlink" and entry.target:
                # follow a relative symlink inside the tree, as the filesystem would
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.target))
                return target != path and self.is_dir(target)
            prefix = path + "/"
            return any(p.startswith(prefix) for p in self.entries)
        return (self.root / path).is_dir()

    def kind(self, path: str) -> EntryKind | None:
        path = path.strip("/")
        if self.entries is not None:
            entry = self.entries.get(path)
            return entry.kind if entry else None
        p = self.root / path
        if p.is_symlink():
            return "symlink"
        if p.is_file():
            return "executable" if os.access(p, os.X_OK) else "file"
        return None

    def list_dir(self, path: str) -> list[str]:
        """Immediate children names of a directory, sorted."""
        path = path.strip("/")
        if self.entries is not None:
            prefix = path + "/" if path else ""
            names = {
                p[len(prefix) :].split("/", 1)[0] for p in self.entries if p.startswith(prefix)
            }
            return sorted(names)
        d = self.root / path
        return sorted(os.listdir(d)) if d.is_dir() else []

    def has_content(self, path: str) -> bool:
        if self.contents is not None:
            return path.strip("/") in self.contents
        return (self.root / path.strip("/")).is_file()

    def read_bytes(self, path: str) -> bytes:
        if self.contents is not None:
            return self.read_text(path).encode()
        return (self.root / path.strip("/")).read_bytes()

    def read_text(self, path: str) -> str:
        if self.contents is not None:
            try:
                return self.contents[path.strip("/")]
            except KeyError:
                raise TreeError(
                    "not part of the embedded snapshot", file=self.root / path
                ) from None
        p = self.root / path.strip("/")
        try:
            return p.read_text(encoding="utf-8")
        except FileNotFoundError:
            if self.exists(path):
                raise TreeError(
                    "listed in ls-tree.txt but its content is not part of this data-only snapshot",
                    file=p,
                ) from None
            raise TreeError("file not found", file=p) from None
        except UnicodeDecodeError as exc:
            raise ParseError(f"not UTF-8 text ({exc.reason})", file=p) from None


class Snapshot(BaseModel):
    """A data-only tree serialised as one JSON document (committed as steps/upstream.json).

    It is what read-only commands use on a fresh clone: the manifest, every sources file, the
    pins and env, and the listing of steps/ and seed/ (mode and path) for existence checks.
    """

    commit: str | None
    listing: list[str]  # "<mode> <path>"
    files: dict[str, str]

    def to_tree(self, origin: Path) -> SourceTree:
        entries = {}
        for line in self.listing:
            mode, _, path = line.partition(" ")
            entries[path] = TreeEntry(path=path, kind=_MODES[mode], object_id="")
        return SourceTree(
            root=origin, data_only=True, commit=self.commit, entries=entries, contents=self.files
        )


def snapshot_of(tree: SourceTree, files: list[str]) -> Snapshot:
    """Capture ``files`` (data) and the listing of steps/ and seed/ from any tree."""
    reverse = {v: k for k, v in _MODES.items()}
    listing: list[str] = []
    if tree.entries is not None:
        for path, entry in sorted(tree.entries.items()):
            if path.startswith(("steps/", "seed/")) and not path.startswith("seed/stage0-posix"):
                listing.append(f"{reverse[entry.kind]} {path}")
    else:
        for top in ("steps", "seed"):
            base = tree.root / top
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(
                    d for d in dirnames if not (top == "seed" and d == "stage0-posix")
                )
                rel_dir = Path(dirpath).relative_to(tree.root).as_posix()
                for name in sorted(
                    filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
                ):
                    rel = f"{rel_dir}/{name}"
                    kind = tree.kind(rel)
                    if kind is not None:
                        listing.append(f"{reverse[kind]} {rel}")
        listing.sort(key=lambda line: line.split(" ", 1)[1])
    return Snapshot(
        commit=tree.commit,
        listing=listing,
        files={f: tree.read_text(f) for f in sorted(files) if tree.has_content(f)},
    )


def _read_commit(root: Path) -> str | None:
    commit_file = root / "COMMIT"
    if commit_file.is_file():
        return commit_file.read_text().split()[0]
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            )
            return out.stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    return None


def _read_listing(listing: Path, symlinks: Path) -> dict[str, TreeEntry]:
    targets: dict[str, str] = {}
    if symlinks.is_file():
        for lineno, line in enumerate(symlinks.read_text().splitlines(), 1):
            if not line.strip():
                continue
            if " -> " not in line:
                raise ParseError("expected '<path> -> <target>'", file=symlinks, line=lineno)
            src, dst = line.split(" -> ", 1)
            targets[src] = dst
    entries: dict[str, TreeEntry] = {}
    for lineno, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        meta, _, path = line.partition("\t")
        fields = meta.split()
        if not path or len(fields) != 3 or fields[0] not in _MODES:
            raise ParseError(
                "expected '<mode> <type> <object>\\t<path>' as printed by git ls-tree -r",
                file=listing,
                line=lineno,
            )
        kind = _MODES[fields[0]]
        entries[path] = TreeEntry(
            path=path, kind=kind, object_id=fields[2], target=targets.get(path)
        )
    return entries
