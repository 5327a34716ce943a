"""Hashes in every form Nix prints them.

* ``sha256:<nix32>`` (narinfo ``NarHash``/``FileHash``, ``nix hash path --base32``)
* ``sha256:<hex>`` and ``sha256:<base64>`` (older tools, ``nix-hash --type sha256``)
* SRI ``sha256-<base64>`` (``nix path-info --json``, ``nix hash path``)
* a bare digest when the algorithm is known from context (``--type sha256``)

The encoding is told apart by its length, as Nix does (for sha256: 64 hex, 52 nix32, 44 base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from orchestrator.formats import nix32

Algo = Literal["md5", "sha1", "sha256", "sha512"]
DIGEST_SIZE: dict[str, int] = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


class HashError(ValueError):
    """A string that is not a hash Nix would accept."""


class Hash(BaseModel):
    """A digest with its algorithm. Compares equal whatever form it was parsed from."""

    model_config = ConfigDict(frozen=True)

    algo: Algo
    digest: bytes

    @field_validator("digest")
    @classmethod
    def _size(cls, v: bytes, info: ValidationInfo) -> bytes:
        algo = info.data.get("algo")
        if algo and len(v) != DIGEST_SIZE[algo]:
            raise ValueError(f"{algo} digest must be {DIGEST_SIZE[algo]} bytes, got {len(v)}")
        return v

    @classmethod
    def of_bytes(cls, data: bytes, algo: Algo = "sha256") -> Hash:
        return cls(algo=algo, digest=hashlib.new(algo, data).digest())

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def nix32(self) -> str:
        return nix32.encode(self.digest)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.digest).decode()

    def to_nix32(self) -> str:
        """``sha256:<nix32>``: the form narinfo files and fingerprints use."""
        return f"{self.algo}:{self.nix32}"

    def to_sri(self) -> str:
        """``sha256-<base64>``: the form ``nix path-info --json`` prints."""
        return f"{self.algo}-{self.base64}"

    def to_hex(self) -> str:
        return f"{self.algo}:{self.hex}"

    def __str__(self) -> str:
        return self.to_nix32()


def _decode_digest(text: str, algo: str, original: str) -> bytes:
    size = DIGEST_SIZE[algo]
    try:
        if len(text) == size * 2:
            return bytes.fromhex(text)
        if len(text) == nix32.encoded_length(size):
            return nix32.decode(text)
        if len(text) == len(base64.b64encode(bytes(size))):
            raw = base64.b64decode(text, validate=True)
            if len(raw) == size:
                return raw
    except (ValueError, binascii.Error) as exc:
        raise HashError(f"invalid {algo} hash {original!r}: {exc}") from None
    raise HashError(
        f"invalid {algo} hash {original!r}: length {len(text)} is neither hex "
        f"({size * 2}), nix32 ({nix32.encoded_length(size)}) nor base64"
    )


def parse_hash(text: str, algo: Algo | None = None) -> Hash:
    """Parse any form Nix prints. ``algo`` is required for a bare digest and, when given,
    must agree with a prefixed one."""
    s = text.strip()
    found: str | None = None
    rest = s
    if ":" in s:
        found, rest = s.split(":", 1)
    else:
        for name in DIGEST_SIZE:
            if s.startswith(name + "-"):
                found, rest = name, s[len(name) + 1 :]
                break
    if found is None:
        if algo is None:
            raise HashError(f"hash {text!r} names no algorithm (expected e.g. 'sha256:...')")
        found = algo
    if found not in DIGEST_SIZE:
        raise HashError(f"unknown hash algorithm {found!r} in {text!r}")
    if algo is not None and found != algo:
        raise HashError(f"expected a {algo} hash, got {found} in {text!r}")
    return Hash(algo=found, digest=_decode_digest(rest, found, text))
