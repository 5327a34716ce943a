"""Cross-bootstrap pairs: compare two builds modulo the store-path hashes they embed.

Two builds of the same thing from different bootstraps differ in every store-path hash they
embed. OURS's NAR is streamed through a rewriter that replaces each paired hash part by its
partner (equal length, so the rewrite is byte-exact), then hashed and compared with THEIRS's NAR
hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.formats.hashes import Hash
from orchestrator.formats.nar import dump_nar, unpack_nar
from orchestrator.formats.storepath import HASH_LEN, STORE_DIR, hash_part, store_name, store_path_of


class HashRewriter:
    """Streaming byte-exact replacement of 32-character store hash parts.

    Feed chunks with ``write``; rewritten bytes go to ``sink``; call ``close`` at the end.
    A hash split across two chunks is still found (the last 31 bytes are held back)."""

    def __init__(self, mapping: dict[str, str], sink: Callable[[Any], object]) -> None:
        for a, b in mapping.items():
            if len(a) != HASH_LEN or len(b) != HASH_LEN:
                raise ValueError(f"hash parts must be {HASH_LEN} characters: {a!r} -> {b!r}")
        self.map = {a.encode(): b.encode() for a, b in mapping.items() if a != b}
        self.sink = sink
        self.tail = b""
        self.count = 0
        keys = sorted(self.map)
        self.regex = re.compile(b"|".join(re.escape(k) for k in keys)) if keys else None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.regex is None:
            self.sink(data)
            return
        buf = self.tail + bytes(data)
        cut = len(buf) - (HASH_LEN - 1)
        if cut <= 0:
            self.tail = buf
            return
        out = bytearray()
        pos = 0
        for m in self.regex.finditer(buf):
            if m.start() >= cut:
                break
            out += buf[pos : m.start()]
            out += self.map[m.group()]
            pos = m.end()
            self.count += 1
        emit = max(cut, pos)
        out += buf[pos:emit]
        self.tail = buf[emit:]
        self.sink(bytes(out))

    def close(self) -> None:
        if self.regex is not None and self.tail:
            tail = self.tail
            out, n = self.regex.subn(lambda m: self.map[m.group()], tail)
            self.count += n
            self.sink(out)
            self.tail = b""


def rewritten_nar_hash(path: str, mapping: dict[str, str]) -> tuple[Hash, int, int]:
    """sha256 and size of ``path``'s NAR after rewriting, and the number of rewrites."""
    h = hashlib.sha256()
    size = 0

    def sink(b: bytes) -> None:
        nonlocal size
        h.update(b)
        size += len(b)

    rw = HashRewriter(mapping, sink)
    dump_nar(path, rw.write)
    rw.close()
    return Hash(algo="sha256", digest=h.digest()), size, rw.count


def unpack_rewritten(path: str, mapping: dict[str, str], dest: Path) -> None:
    """Unpack ``path``'s NAR, rewritten through ``mapping``, at ``dest`` (for ``--diff``); the
    rewritten NAR goes through a temporary file, not memory."""
    with tempfile.TemporaryFile(prefix="orchestrator-rewritten-") as nar:
        rw = HashRewriter(mapping, nar.write)
        dump_nar(path, rw.write)
        rw.close()
        nar.seek(0)
        unpack_nar(nar, dest)


class Pair(BaseModel):
    model_config = ConfigDict(frozen=True)

    ours: str
    theirs: str


class PairsFile(BaseModel):
    """``--pairs FILE.json``: ``{"pairs": [{"ours": P, "theirs": Q}, ...]}`` or ``{P: Q, ...}``."""

    pairs: list[Pair]


def parse_pair(text: str) -> Pair:
    ours, sep, theirs = text.partition("=")
    if not sep:
        raise OrchestratorError(f"--pair {text!r} is not OURS=THEIRS")
    return _check_pair(Pair(ours=ours.strip(), theirs=theirs.strip()), where="--pair")


def _check_pair(pair: Pair, *, where: str, line: int | None = None) -> Pair:
    for side in (pair.ours, pair.theirs):
        sp = store_path_of(side)
        if sp is None or sp != side.rstrip("/"):
            raise OrchestratorError(
                f"{side!r} is not a store path",
                file=where,
                line=line,
                hint=f"pairs name store paths: {STORE_DIR}/<hash>-<name>",
            )
    return Pair(ours=pair.ours.rstrip("/"), theirs=pair.theirs.rstrip("/"))


def load_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OrchestratorError(f"cannot read pairs: {exc.strerror}", file=str(path)) from None
    except ValueError as exc:
        raise OrchestratorError(f"not JSON: {exc}", file=str(path)) from None
    if isinstance(data, dict) and "pairs" not in data:
        data = {"pairs": [{"ours": k, "theirs": v} for k, v in data.items()]}
    try:
        parsed = PairsFile.model_validate(data)
    except ValidationError as exc:
        raise OrchestratorError(
            f"not a pairs file: {exc.errors()[0]['msg']}",
            file=str(path),
            hint='expected {"pairs": [{"ours": "/nix/store/...", "theirs": "/nix/store/..."}]}',
        ) from None
    return [_check_pair(p, where=str(path)) for p in parsed.pairs]


def pair_mapping(
    pairs: Iterable[Pair],
    ours_refs: Iterable[str] = (),
    theirs_refs: Iterable[str] = (),
) -> dict[str, str]:
    """Hash-part mapping: every explicit pair, plus references paired by name when a name
    occurs exactly once on each side and neither side is paired already."""
    mapping = {hash_part(p.ours): hash_part(p.theirs) for p in pairs}
    taken = set(mapping.values())

    def by_name(refs: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in refs:
            out.setdefault(store_name(r), []).append(r)
        return out

    ours_by, theirs_by = by_name(ours_refs), by_name(theirs_refs)
    for name, ours in ours_by.items():
        theirs = theirs_by.get(name, [])
        if len(ours) == 1 and len(theirs) == 1:
            a, b = hash_part(ours[0]), hash_part(theirs[0])
            if a not in mapping and b not in taken:
                mapping[a] = b
                taken.add(b)
    return mapping
