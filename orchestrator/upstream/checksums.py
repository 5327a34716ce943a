"""Pinned hashes: ``*.checksums`` (sha256sum format) and ``steps/SHA256SUMS.pkgs``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ParseError
from orchestrator.upstream.sources import SHA256_RE


class Pin(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str
    path: str
    line: int


def parse_checksums(text: str, path: str) -> list[Pin]:
    """``<sha256>  <path>`` lines, as ``sha256sum`` writes and ``sha256sum -c`` reads them."""
    pins: list[Pin] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        sha, _, name = raw.strip().partition(" ")
        name = name.lstrip(" ").lstrip("*")
        if not SHA256_RE.match(sha) or not name:
            raise ParseError("expected '<sha256>  <path>'", file=path, line=lineno)
        pins.append(Pin(sha256=sha.lower(), path=name, line=lineno))
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
