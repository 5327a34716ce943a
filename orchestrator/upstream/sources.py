"""``steps/<pkg>/sources``: the distfiles a step needs, in every syntax history has used.

- typed (since 2025-10):   ``f|file <url> <sha256> [name]`` and ``g|git <repo>~<ref> <url|_> <sha256> [name]``
- untyped (2025):          ``<url> <sha256> [name]`` and ``git://<repo>~<ref> <url|_> <sha256> [name]``
- plain (2024):            ``<url> <sha256> [name]``

The file name defaults to the URL's basename. Lines naming the same file are alternative URLs of
one distfile. ``g`` entries whose URL is ``_`` have no HTTP snapshot: only a mirror or a seeded
store can provide them.
"""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import GenerateError, ParseError
from orchestrator.nixstr import nix_string
from orchestrator.upstream.names import check_store_name

SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")  # always used with fullmatch


class SourceLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    kind: Literal["f", "g"]
    url: str | None  # None for a git entry without snapshot URL ("_")
    sha256: str
    filename: str
    git_repo: str | None = None
    git_ref: str | None = None


# Fields are split as upstream splits them (helpers.sh: `read line` then ${line} unquoted, IFS
# space, tab, newline; lib/generator.py: lines, then split(" ")): on spaces and tabs only. A \x0c,
# \x85 or \u2028 is part of a field (and fails its grammar), never a line or field break, as it
# would be to Python's splitlines() and split().
_FIELD_SEP = re.compile(r"[ \t]+")


def source_lines(text: str) -> list[tuple[int, str]]:
    """Numbered lines as upstream reads them: split on ``\n`` only (``\r\n`` ends a line too)."""
    return [(n, raw.removesuffix("\r")) for n, raw in enumerate(text.split("\n"), 1)]


def parse_sources(text: str, path: str) -> list[SourceLine]:
    out: list[SourceLine] = []
    for lineno, raw in source_lines(text):
        stripped = raw.strip(" \t")
        tokens = _FIELD_SEP.split(stripped) if stripped else []
        if not tokens:
            continue
        out.append(_parse_line(tokens, path, lineno))
    return out


def _parse_line(tokens: list[str], path: str, lineno: int) -> SourceLine:
    def fail(msg: str, hint: str | None = None) -> ParseError:
        return ParseError(msg, file=path, line=lineno, hint=hint)

    head = tokens[0]
    kind: Literal["f", "g"]
    git_repo = git_ref = None
    if head in ("f", "file"):
        kind, rest = "f", tokens[1:]
    elif head in ("g", "git"):
        kind, rest = "g", tokens[1:]
    elif head.startswith("git://"):
        kind, rest = "g", tokens
    else:
        kind, rest = "f", tokens

    if kind == "g":
        if len(rest) < 3:
            raise fail("a git source needs '<repo>~<ref> <url|_> <sha256> [name]'")
        spec, rest = rest[0], rest[1:]
        if "~" not in spec:
            raise fail(f"git source {spec!r} has no '~<ref>'")
        git_repo, git_ref = spec.rsplit("~", 1)
        if not git_repo or not git_ref:
            raise fail(f"git source {spec!r} needs a repository and a ref: '<repo>~<ref>'")
    if len(rest) not in (2, 3):
        raise fail(
            f"expected '<url> <sha256> [name]', found {len(rest)} fields",
            hint="typed lines: f <url> <sha256> [name] | g <repo>~<ref> <url|_> <sha256> [name]",
        )
    url: str | None = rest[0]
    sha = rest[1]
    if not SHA256_RE.fullmatch(sha):
        raise fail(f"sha256 {sha!r} is not 64 hexadecimal digits")
    if url == "_":
        if kind != "g":
            raise fail("'_' instead of a URL is only allowed for git sources")
        url = None
    if len(rest) == 3:
        filename = rest[2]
    elif url is not None:
        filename = posixpath.basename(url)  # as live-bootstrap's source_manifest does
    else:
        raise fail("a git source without URL must name its file")
    check_filename(filename, path, lineno)
    for value in (url, git_repo, git_ref):
        _check_nix_holds(value, filename, path, lineno)
    return SourceLine(
        file=path,
        line=lineno,
        kind=kind,
        url=url,
        sha256=sha.lower(),
        filename=filename,
        git_repo=git_repo,
        git_ref=git_ref,
    )


def check_filename(name: str, path: str, lineno: int) -> None:
    """A distfile name becomes a store path name (``builtin:fetchurl``'s output)."""
    check_store_name(name, "distfile name", path, lineno)


def _check_nix_holds(value: str | None, filename: str, path: str, lineno: int) -> None:
    """Every value of a sources line becomes a Nix string in steps/distfiles.nix: one Nix cannot
    hold (NUL, a lone surrogate) is refused here, at its line, so the printer never fails on it."""
    if value is None:
        return
    try:
        nix_string(value)
    except GenerateError as exc:
        raise ParseError(f"distfile {filename!r}: {exc.message}", file=path, line=lineno) from None
