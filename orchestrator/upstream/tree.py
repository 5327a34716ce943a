"""Access to a live-bootstrap tree: a real checkout, or a data-only snapshot.

A data-only snapshot (like the test fixtures) holds the real data files (manifest, sources,
checksums, env) plus ``ls-tree.txt`` -- ``git ls-tree -r`` output listing every path with its
mode -- and ``symlinks.txt``. Code files are only *listed* there, so existence and mode checks
go through the listing while text is read from disk. Both kinds answer the same questions, so
everything downstream is agnostic of which one it reads.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from orchestrator.errors import ParseError, TreeError
from orchestrator.formats.inroot import MAX_LINKS, LinkLoop, OutsideRoot, resolve_in_root
from orchestrator.gitcli import git_or_none

EntryKind = Literal["file", "executable", "symlink", "submodule"]
_MODES: dict[str, EntryKind] = {
    "100644": "file",
    "100755": "executable",
    "120000": "symlink",
    "160000": "submodule",
}


# The committed data snapshot in steps/ that read-only commands use on a fresh clone.
SNAPSHOT_FILE = "upstream.json"


class _Cache:
    """What one tree has resolved so far (the tree does not change while we read it)."""

    def __init__(self) -> None:
        self.resolved: dict[tuple[str, bool], str] = {}
        self.links: dict[str, str | None] = {}


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
        listing = _own_file(root, "ls-tree.txt")
        data_only = (
            listing is not None and not (root / "seed" / "stage0-posix" / "kaem.x86").exists()
        )
        if commit is None:
            commit = _read_commit(root)
        entries = (
            _read_listing(listing, _own_file(root, "symlinks.txt"))
            if listing and data_only
            else None
        )
        return cls(root=root, data_only=data_only, commit=commit, entries=entries)

    # -- resolution ----------------------------------------------------------------------------
    # Every query resolves its path first: symlinks are followed the way the kernel would, but
    # only inside the tree. A link that leads out of it (absolute, or too many '..') or a loop is
    # a TreeError, so a hostile tree can never make us read -- and commit into
    # steps/upstream.json -- a file of the host, nor recurse forever.
    _cache: _Cache | None = PrivateAttr(default=None)

    def _clean(self, path: str) -> str:
        rel = path.strip("/")
        if rel and ("\0" in rel or any(part in ("", ".", "..") for part in rel.split("/"))):
            raise TreeError(f"{path!r} is not a plain path inside the tree", file=self.root)
        return rel

    def _read_link(self, rel: str) -> str | None:
        """The target of ``rel`` if it is a symlink of this tree (as far as the tree knows)."""
        if self.entries is not None:
            entry = self.entries.get(rel)
            # a listed symlink whose target is unknown (no symlinks.txt) cannot be followed
            return entry.target if entry is not None and entry.kind == "symlink" else None
        if self.contents is not None:
            return None
        p = f"{self.root}/{rel}"
        try:
            if not stat.S_ISLNK(os.lstat(p).st_mode):
                return None
            return os.readlink(p)
        except OSError:
            return None

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """``path`` with its symlinks followed inside the tree (the last one only if ``follow``).

        Raises TreeError for a symlink that leads out of the tree or a cycle. One component at
        a time through the shared resolver (formats/inroot.py), each resolved directory cached,
        so a deep path costs no recursion and a sibling reuses its parent.
        """
        private = self.__pydantic_private__
        cached = private.get("_cache") if private is not None else None
        cache: _Cache = cached if isinstance(cached, _Cache) else _Cache()
        if cached is not cache and private is not None:
            private["_cache"] = cache
        key = (path, follow)
        hit = cache.resolved.get(key)
        if hit is not None:
            return hit
        links = cache.links
        resolved = cache.resolved

        def read_link(here: str) -> str | None:
            if here not in links:
                links[here] = self._read_link(here)
            return links[here]

        rel = self._clean(path)
        parts = rel.split("/") if rel else []
        # start from the longest directory prefix already resolved (usually the parent)
        consumed = len(parts) - 1
        while consumed > 0:
            start = resolved.get(("/".join(parts[:consumed]), True))
            if start is not None:
                break
            consumed -= 1
        else:
            consumed, start = 0, ""
        here = start
        try:
            for i in range(consumed, len(parts)):
                last = i == len(parts) - 1
                here = resolve_in_root(
                    parts[i],
                    read_link,
                    absolute="refuse",
                    follow=follow or not last,
                    start=here.split("/") if here else (),
                )
                if not last:
                    resolved[("/".join(parts[: i + 1]), True)] = here
        except OutsideRoot as exc:
            raise self._outside(path, exc.link, exc.target) from None
        except LinkLoop as exc:
            raise TreeError(
                f"symlink cycle: resolving {rel} follows more than {MAX_LINKS} links "
                f"(at {exc.link} -> {exc.target})",
                file=self.root / exc.link,
                hint="a live-bootstrap tree has no symlink loops; refusing to read it",
            ) from None
        out = cache.resolved[key] = here
        return out

    def _outside(self, path: str, link: str | None = None, target: str | None = None) -> TreeError:
        what = f"symlink {link} -> {target}" if link else f"path {path!r}"
        return TreeError(
            f"{what} leads out of the live-bootstrap tree",
            file=self.root / (link or path.strip("/")),
            hint="live-bootstrap's own symlinks are relative and stay inside the tree; "
            "refusing to read a file of this machine",
        )

    def _disk(self, rel: str) -> Path:
        """The file on disk for a resolved path; it must really be inside ``root``."""
        p = self.root / rel
        if self.entries is None:
            return p  # ``resolve`` walked these very components on disk
        # a data-only snapshot: resolved by its listing, so check what the disk holds
        real = os.path.realpath(p)
        root = os.path.realpath(self.root)
        if real != root and not real.startswith(root + os.sep):
            raise self._outside(rel, rel, os.readlink(p) if os.path.islink(p) else real)
        return p

    # -- queries -------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        path = self.resolve(path)
        if self.entries is not None:
            if path in self.entries:
                return True
            prefix = path + "/"
            return any(p.startswith(prefix) for p in self.entries)
        return os.path.lexists(self.root / path)

    def is_dir(self, path: str) -> bool:
        path = self.resolve(path)
        if self.entries is not None:
            prefix = path + "/" if path else ""
            return any(p.startswith(prefix) for p in self.entries)
        return (self.root / path).is_dir()

    def kind(self, path: str) -> EntryKind | None:
        path = self.resolve(path, follow=False)
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
        path = self.resolve(path)
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
            return self._clean(path) in self.contents
        p = self._disk(self.resolve(path))
        try:
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            link = self.root / self.resolve(path, follow=False)
            if os.path.islink(link):  # "absent" would silently drop what it holds
                raise TreeError(
                    f"a symlink to a missing file ({os.readlink(link)})", file=link
                ) from None
            return False
        if stat.S_ISREG(mode):
            return True
        kind = "directory" if stat.S_ISDIR(mode) else _kind_name(mode)
        raise TreeError(f"a {kind} where a file was expected: refusing to read it", file=p)

    def read_bytes(self, path: str) -> bytes:
        if self.contents is not None:
            return self.read_text(path).encode()
        return read_regular(self._disk(self.resolve(path)))

    def read_text(self, path: str) -> str:
        if self.contents is not None:
            try:
                return self.contents[self._clean(path)]
            except KeyError:
                raise TreeError(
                    "not part of the embedded snapshot", file=self.root / path
                ) from None
        p = self._disk(self.resolve(path))
        try:
            # bytes as they are: no newline translation (a CR stays part of its token, as in
            # script-generator.c, which reads the raw file)
            return read_regular(p).decode("utf-8")
        except FileNotFoundError:
            if self.exists(path):
                raise TreeError(
                    "listed in ls-tree.txt but its content is not part of this data-only snapshot",
                    file=p,
                ) from None
            raise TreeError("file not found", file=p) from None
        except IsADirectoryError:
            raise TreeError("a directory where a file was expected", file=p) from None
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
            if mode not in _MODES or not path:
                raise ParseError(
                    f"listing entry {line!r} is not '<mode> <path>'",
                    file=origin / "upstream.json",
                    hint="steps/upstream.json is generated: regenerate it",
                )
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
            for rel in _walk(tree.root, top, skip="seed/stage0-posix"):
                kind = tree.kind(rel)
                if kind is not None:
                    listing.append(f"{reverse[kind]} {rel}")
        listing.sort(key=lambda line: line.split(" ", 1)[1])
    return Snapshot(
        commit=tree.commit,
        listing=listing,
        files={f: tree.read_text(f) for f in sorted(files) if tree.has_content(f)},
    )


def read_regular(p: Path) -> bytes:
    """The bytes of ``p`` if it is a regular file. A FIFO would block for ever, a device never
    end, a socket not open: each is a TreeError naming the file, never a read."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise
    except OSError as exc:
        raise TreeError(f"cannot read: {exc.strerror}", file=p) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(p)
        if not stat.S_ISREG(st.st_mode):
            raise TreeError(
                f"a {_kind_name(st.st_mode)} where a file was expected: refusing to read it",
                file=p,
                hint="a live-bootstrap tree holds regular files, directories and symlinks only",
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    if stat.S_ISSOCK(mode):
        return "socket"
    return f"special file (mode {mode:o})"


def _walk(root: Path, top: str, *, skip: str) -> list[str]:
    """Files, and symlinks to directories, below ``root/top`` as root-relative paths: depth
    first with a stack (no recursion limit; Python 3.11's os.walk recurses), links to
    directories listed but not entered."""
    out: list[str] = []
    todo = [top]
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(root / rel) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # not a directory (or gone): nothing below it
        for e in entries:
            child = f"{rel}/{e.name}"
            try:
                e.name.encode("utf-8")
            except UnicodeEncodeError:  # bytes os.fsdecode could only smuggle as surrogates
                raise TreeError(
                    "a file name that is not UTF-8: steps/upstream.json could not hold it",
                    file=Path(os.fsencode(root / child).decode("utf-8", "backslashreplace")),
                ) from None
            if e.is_dir(follow_symlinks=False):
                if child != skip:
                    todo.append(child)
            else:
                out.append(child)
    return out


def _own_file(root: Path, name: str) -> Path | None:
    """A metadata file at the root of a tree, if there is one; it must not lead out of it."""
    p = root / name
    if not p.is_file():
        return None
    real = os.path.realpath(p)
    if not real.startswith(os.path.realpath(root) + os.sep):
        raise TreeError(
            f"{name} is a symlink out of the tree (to {real})",
            file=p,
            hint="refusing to read a file of this machine as tree metadata",
        )
    return p


def _read_commit(root: Path) -> str | None:
    commit_file = _own_file(root, "COMMIT")
    if commit_file is not None:
        words = read_regular(commit_file).split()
        if not words or not _COMMIT_RE.fullmatch(words[0]):
            raise ParseError(
                "expected a git commit id (40 or 64 hex digits) as the first word",
                file=commit_file,
                line=1,
            )
        return words[0].decode("ascii")
    if (root / ".git").exists():
        return git_or_none(root, "rev-parse", "HEAD")
    return None


_COMMIT_RE = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")


def _lines(p: Path) -> list[tuple[int, str]]:
    """The numbered lines of a metadata file, each UTF-8 (a ParseError naming the line if
    not); split on ``\n`` only, as git writes them."""
    out = []
    for lineno, raw in enumerate(read_regular(p).split(b"\n"), 1):
        try:
            out.append((lineno, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise ParseError(f"not UTF-8 text ({exc.reason})", file=p, line=lineno) from None
    return out


def _read_listing(listing: Path, symlinks: Path | None) -> dict[str, TreeEntry]:
    targets: dict[str, str] = {}
    if symlinks is not None:
        for lineno, line in _lines(symlinks):
            if not line.strip():
                continue
            if " -> " not in line:
                raise ParseError("expected '<path> -> <target>'", file=symlinks, line=lineno)
            src, dst = line.split(" -> ", 1)
            targets[src] = dst
    entries: dict[str, TreeEntry] = {}
    for lineno, line in _lines(listing):
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
