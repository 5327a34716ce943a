"""What enters a derivation closure without being built: the trust surface of a target.

The closure comes from ``nix show-derivation -r`` (Nix 2.8) or ``nix derivation show -r``
(current Nix): evaluation only, nothing is built, so it works offline on a fresh clone. Every
input that is not the output of a built derivation is classified:

* ``source``: a fixed-output derivation by ``builtin:fetchurl`` (a distfile, by URL and hash);
* ``fixed-output``: any other fixed-output derivation (named with its builder);
* a file of a store source (``inputSrcs``; a directory is walked file by file):
  ``seed`` (binary and under ``bootstrap-seeds/``, or byte-identical to a file there in the
  live-bootstrap tree), ``seed-source`` (text under ``bootstrap-seeds/``), ``patch``, ``script``,
  ``text``, or ``unexpected-binary`` (binary: a NUL byte or ELF magic, and no seed).

Each file also names where its bytes come from in the live-bootstrap tree when they are there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import nixcli
from orchestrator.build.closure import FETCHURL, Derivation

SEED_DIR = "bootstrap-seeds/"
ELF_MAGIC = b"\x7fELF"

Kind = Literal[
    "source", "fixed-output", "seed", "seed-source", "patch", "script", "text", "unexpected-binary"
]
BINARY_KINDS = ("seed", "unexpected-binary")


# -- classification ------------------------------------------------------------------------------
class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    store_path: str  # the input as Nix sees it (a store path, or a fixed-output .drv)
    file: str | None = None  # path inside a directory input
    size: int | None = None
    sha256: str | None = None
    url: str | None = None  # fixed-output: the URL Nix fetches
    urls: list[str] = Field(default_factory=list)
    origin: str | None = None  # "live-bootstrap:<path>" when the bytes are in the tree
    used_by: list[str] = Field(default_factory=list)  # names of derivations that take it


class AuditReport(BaseModel):
    target: str
    derivations: int  # in the closure
    built: int  # derivations that are not fixed-output
    findings: list[Finding]
    seed_bytes: int
    counts: dict[str, int]
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.unexpected == 0


def is_binary(data: bytes) -> bool:
    return b"\0" in data or data.startswith(ELF_MAGIC)


class TreeIndex:
    """Files of a live-bootstrap tree by content, to tell where an input's bytes come from."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._by_size: dict[int, list[str]] = {}
        self._hashes: dict[str, str] = {}
        if root is not None and root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if d != ".git"]
                for f in filenames:
                    full = Path(dirpath) / f
                    if full.is_symlink() or not full.is_file():
                        continue
                    rel = full.relative_to(root).as_posix()
                    self._by_size.setdefault(full.stat().st_size, []).append(rel)

    def find(self, size: int, sha256: str) -> list[str]:
        assert self.root is not None or not self._by_size
        out = []
        for rel in self._by_size.get(size, []):
            h = self._hashes.get(rel)
            if h is None:
                h = self._hashes[rel] = hashlib.sha256((self.root / rel).read_bytes()).hexdigest()  # type: ignore[operator]
            if h == sha256:
                out.append(rel)
        return out


def classify_file(name: str, data: bytes, tree_paths: list[str]) -> Kind:
    """One file: ``name`` is its path inside its input (or its store name)."""
    in_seeds = SEED_DIR in f"/{name}" or any(SEED_DIR in p for p in tree_paths)
    if is_binary(data):
        return "seed" if in_seeds else "unexpected-binary"
    if in_seeds:
        return "seed-source"
    lower = name.lower()
    if lower.endswith((".patch", ".diff")) or "/patches" in f"/{lower}":
        return "patch"
    if lower.endswith((".sh", ".kaem", ".py", ".pl")) or data.startswith(b"#!"):
        return "script"
    return "text"


def _files(store_path: str) -> Iterable[tuple[str | None, Path]]:
    p = Path(nixcli.real_path(store_path))  # under its root in a chroot store
    if p.is_symlink() or p.is_file():
        yield None, p
        return
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames.sort()
        for f in sorted(filenames):
            full = Path(dirpath) / f
            if full.is_symlink():
                continue
            yield full.relative_to(p).as_posix(), full


def classify_source(store_path: str, tree: TreeIndex) -> list[Finding]:
    """Every file of one store source."""
    out: list[Finding] = []
    base_name = store_path.rsplit("/", 1)[-1].split("-", 1)[-1]
    for rel, full in _files(store_path):
        if full.is_symlink():
            continue
        data = full.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        tree_paths = tree.find(len(data), sha) if tree.root is not None else []
        name = rel if rel is not None else base_name
        kind = classify_file(name, data, tree_paths)
        origin = None
        if tree_paths:
            pick = next(
                (p for p in tree_paths if p.endswith("/" + name) or p == name), tree_paths[0]
            )
            origin = f"live-bootstrap:{pick}"
        out.append(
            Finding(
                kind=kind,
                store_path=store_path,
                file=rel,
                size=len(data),
                sha256=sha,
                origin=origin,
            )
        )
    return out


def distinct_seeds(findings: list[Finding]) -> list[Finding]:
    """Seed findings, one per content (sha256), in order of first appearance."""
    seen: dict[str, Finding] = {}
    for f in findings:
        if f.kind == "seed":
            seen.setdefault(f.sha256 or f.store_path, f)
    return list(seen.values())


def audit(
    target: str,
    closure: dict[str, Derivation],
    tree: TreeIndex,
) -> AuditReport:
    users: dict[str, list[str]] = {}
    fods: dict[str, Derivation] = {}
    for drv in closure.values():
        if drv.fixed_output:
            fods[drv.path] = drv
        for src in drv.input_srcs:
            users.setdefault(src, []).append(drv.name)
        for dep in drv.input_drvs:
            dep_drv = closure.get(dep)
            if dep_drv is not None and dep_drv.fixed_output:
                users.setdefault(dep, []).append(drv.name)
    findings: list[Finding] = []
    for path in sorted(fods):
        drv = fods[path]
        out = next(iter(drv.outputs.values()))
        urls = drv.env.get("urls", "").split() or ([drv.env["url"]] if drv.env.get("url") else [])
        findings.append(
            Finding(
                kind="source" if drv.builder == FETCHURL else "fixed-output",
                store_path=path,
                file=drv.name if drv.builder == FETCHURL else f"{drv.name} (builder {drv.builder})",
                sha256=out.hash,
                url=drv.env.get("url"),
                urls=urls,
                used_by=sorted(set(users.get(path, []))),
            )
        )
    for src in sorted(users):
        if src in fods:
            continue
        for f in classify_source(src, tree):
            findings.append(f.model_copy(update={"used_by": sorted(set(users[src]))}))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    # a seed copied into two store paths (a file of its own, and inside a tree) is one seed
    seed_bytes = sum(f.size or 0 for f in distinct_seeds(findings))
    return AuditReport(
        target=target,
        derivations=len(closure),
        built=len(closure) - len(fods),
        findings=findings,
        seed_bytes=seed_bytes,
        counts=dict(sorted(counts.items())),
        unexpected=counts.get("unexpected-binary", 0),
    )
