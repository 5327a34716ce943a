"""Pinned hashes: ``*.checksums`` (sha256sum format) and ``steps/SHA256SUMS.pkgs``.

Both are parsed when the chain is loaded, so a bad line stops ``generate`` with its file and
line instead of surfacing later in a build or in ``verify``. The paths they pin follow the one
grammar of ``names``: the kaem-era ``*.checksums`` pin absolute paths inside the step's root
filesystem (``/usr/bin/tcc``), ``SHA256SUMS.pkgs`` pins package tarballs by store name.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ParseError
from orchestrator.upstream.names import check_path, check_store_name

# sha256sum's output: the digest, one space, then ' ' (text mode) or '*' (binary mode), the name
_LINE_RE = re.compile(r"(?P<sha>[0-9a-fA-F]{64}) [ *](?P<name>.*)")


class Pin(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str
    path: str
    line: int


def parse_checksums(text: str, path: str, names: Literal["path", "file"] = "path") -> list[Pin]:
    """``<sha256>  <path>`` lines, as ``sha256sum`` writes and ``sha256sum -c`` reads them.

    ``names="path"``: every name is an absolute path in the step's root filesystem (kaem era);
    ``names="file"``: every name is a plain file (store) name (``SHA256SUMS.pkgs``).
    """
    pins: list[Pin] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        m = _LINE_RE.fullmatch(raw)
        if m is None:
            raise ParseError(
                "expected '<sha256>  <path>' (64 hexadecimal digits, two spaces, the path)",
                file=path,
                line=lineno,
            )
        name = m.group("name")
        if names == "path":
            check_path(name, "pinned path", path, lineno)
        else:
            check_store_name(name, "pinned file", path, lineno)
        pins.append(Pin(sha256=m.group("sha").lower(), path=name, line=lineno))
    return pins


def pins_by_name(pins: list[Pin], path: str) -> dict[str, Pin]:
    out: dict[str, Pin] = {}
    for pin in pins:
        if pin.path in out and out[pin.path].sha256 != pin.sha256:
            raise ParseError(
                f"{pin.path} is pinned twice with different hashes", file=path, line=pin.line
            )
        out[pin.path] = pin
    return out
