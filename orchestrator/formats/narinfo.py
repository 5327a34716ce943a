"""``.narinfo`` files of Nix binary caches: parsing, fingerprints and ed25519 signatures.

A narinfo is ``Key: value`` lines. Nix's signed *fingerprint* of a path is::

    1;<store path>;<NarHash as sha256:nix32>;<NarSize>;<references as full store paths, sorted, comma-joined>

and each ``Sig: <key name>:<base64 ed25519 signature>`` signs it. A public key is
``<name>:<base64 32 bytes>``; a secret key (``nix key generate-secret``) is
``<name>:<base64 64 bytes>`` (seed then public key). Crypto is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ParseError
from orchestrator.formats.hashes import Hash, HashError, parse_hash
from orchestrator.formats.storepath import check_base_name, check_store_dir, check_store_path

DEFAULT_STORE_DIR = "/nix/store"
DEFAULT_TRUSTED_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
_DECIMAL = re.compile(r"[0-9]{1,19}")
COMPRESSIONS = ("none", "xz", "bzip2", "zstd", "br", "gzip", "lzip", "lz4")


class NarInfo(BaseModel):
    """One narinfo. ``references`` and ``deriver`` are base names, as the file writes them."""

    model_config = ConfigDict(frozen=True)

    store_path: str
    url: str
    compression: str = "bzip2"
    file_hash: Hash | None = None
    file_size: int | None = None
    nar_hash: Hash
    nar_size: int
    references: list[str] = Field(default_factory=list)
    deriver: str | None = None
    system: str | None = None
    sigs: list[str] = Field(default_factory=list)
    ca: str | None = None

    @property
    def store_dir(self) -> str:
        return str(PurePosixPath(self.store_path).parent)

    @property
    def hash_part(self) -> str:
        return PurePosixPath(self.store_path).name[:32]

    def reference_paths(self) -> list[str]:
        return sorted(f"{self.store_dir}/{r}" for r in self.references)

    def fingerprint(self) -> str:
        if self.nar_hash.algo != "sha256":
            raise ValueError("Nix only signs narinfos whose NarHash is sha256")
        return ";".join(
            [
                "1",
                self.store_path,
                self.nar_hash.to_nix32(),
                str(self.nar_size),
                ",".join(self.reference_paths()),
            ]
        )

    def to_text(self) -> str:
        """Serialise as Nix writes narinfo files (field order of ``NarInfo::to_string``)."""
        lines = [f"StorePath: {self.store_path}", f"URL: {self.url}"]
        lines.append(f"Compression: {self.compression}")
        if self.file_hash is not None:
            lines.append(f"FileHash: {self.file_hash.to_nix32()}")
        if self.file_size is not None:
            lines.append(f"FileSize: {self.file_size}")
        lines.append(f"NarHash: {self.nar_hash.to_nix32()}")
        lines.append(f"NarSize: {self.nar_size}")
        lines.append("References: " + " ".join(self.references))
        if self.deriver:
            lines.append(f"Deriver: {self.deriver}")
        if self.system:
            lines.append(f"System: {self.system}")
        lines.extend(f"Sig: {s}" for s in self.sigs)
        if self.ca:
            lines.append(f"CA: {self.ca}")
        return "\n".join(lines) + "\n"


_KEYS = {
    "StorePath": "store_path",
    "URL": "url",
    "Compression": "compression",
    "FileHash": "file_hash",
    "FileSize": "file_size",
    "NarHash": "nar_hash",
    "NarSize": "nar_size",
    "References": "references",
    "Deriver": "deriver",
    "System": "system",
    "Sig": "sigs",
    "CA": "ca",
}


def parse_narinfo(text: str, *, source: str = "<narinfo>") -> NarInfo:
    """Parse narinfo text. Unknown keys are ignored (Nix ignores them too); missing required
    fields, malformed numbers or hashes raise ``ParseError`` naming the file and line."""
    fields: dict[str, object] = {}
    sigs: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            raise ParseError(f"line is not 'Key: value': {raw[:80]!r}", file=source, line=lineno)
        value = value.strip()
        name = _KEYS.get(key.strip())
        if name is None:
            continue
        try:
            if name in ("file_size", "nar_size"):
                if not _DECIMAL.fullmatch(value):  # ASCII, as Nix's string2Int reads it
                    raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
                fields[name] = int(value)
            elif name in ("file_hash", "nar_hash"):
                fields[name] = parse_hash(value)
            elif name == "references":
                fields[name] = [check_base_name(r) for r in value.split()]
            elif name == "sigs":
                sigs.append(value)
            elif name == "store_path":
                # Nix's own grammar: <canonical store dir>/<32 nix32 chars>-<name>
                store_dir, _, _base = value.rpartition("/")
                fields[name] = check_store_path(value, check_store_dir(store_dir))
            elif name == "deriver":
                deriver = value if value not in ("", "unknown-deriver") else None
                fields[name] = check_base_name(deriver) if deriver is not None else None
            else:
                fields[name] = value
        except (ValueError, HashError) as exc:
            raise ParseError(str(exc), file=source, line=lineno) from None
    for required in ("StorePath", "URL", "NarHash", "NarSize"):
        if _KEYS[required] not in fields:
            raise ParseError(f"narinfo has no {required} field", file=source)
    if "compression" in fields and not fields["compression"]:
        del fields["compression"]
    fields["sigs"] = sigs
    return NarInfo.model_validate(fields)


# --------------------------------------------------------------------------------------------
# Keys and signatures


class KeyFormatError(ParseError):
    """A key that is not ``name:base64``."""


@functools.lru_cache(maxsize=64)
def _ed25519(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


class PublicKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    key: bytes  # 32 raw bytes

    def __str__(self) -> str:
        return f"{self.name}:{base64.b64encode(self.key).decode()}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            _ed25519(self.key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class SecretKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    key: bytes  # 64 raw bytes: seed + public key

    def public(self) -> PublicKey:
        return PublicKey(name=self.name, key=self.key[32:])

    def sign(self, message: bytes) -> str:
        sig = Ed25519PrivateKey.from_private_bytes(self.key[:32]).sign(message)
        return f"{self.name}:{base64.b64encode(sig).decode()}"


def _split_key(text: str, size: int, what: str) -> tuple[str, bytes]:
    name, sep, b64 = text.strip().partition(":")
    if not sep or not name:
        raise KeyFormatError(f"{what} {text!r} is not 'name:base64'")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what} {name!r} is not valid base64") from None
    if len(raw) != size:
        raise KeyFormatError(f"{what} {name!r} has {len(raw)} bytes, expected {size}")
    return name, raw


def parse_public_key(text: str) -> PublicKey:
    name, raw = _split_key(text, 32, "public key")
    return PublicKey(name=name, key=raw)


def parse_secret_key(text: str) -> SecretKey:
    name, raw = _split_key(text, 64, "secret key")
    return SecretKey(name=name, key=raw)


class SigStatus(StrEnum):
    valid = "valid"  # verifies with the trusted key of that name
    invalid = "invalid"  # a trusted key of that name exists but the signature does not verify
    unknown_key = "unknown-key"  # no trusted key has that name
    malformed = "malformed"  # not name:base64 of 64 bytes


class SigCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    key_name: str
    status: SigStatus


class SignatureReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    fingerprint: str
    checks: list[SigCheck]

    @property
    def valid_keys(self) -> list[str]:
        return [c.key_name for c in self.checks if c.status is SigStatus.valid]

    @property
    def trusted(self) -> bool:
        return bool(self.valid_keys)

    def reason(self) -> str:
        if self.trusted:
            return "signed by " + ", ".join(self.valid_keys)
        if not self.checks:
            return "narinfo carries no signature"
        parts = []
        for c in self.checks:
            if c.status is SigStatus.invalid:
                parts.append(f"signature by {c.key_name} does not verify")
            elif c.status is SigStatus.unknown_key:
                parts.append(f"signature by untrusted key {c.key_name}")
            else:
                parts.append(f"malformed signature {c.key_name!r}")
        return "; ".join(parts)


def check_signatures(info: NarInfo, trusted: Iterable[PublicKey]) -> SignatureReport:
    keys: dict[str, list[PublicKey]] = {}
    for k in trusted:
        keys.setdefault(k.name, []).append(k)
    fp = info.fingerprint().encode()
    checks = []
    for sig in info.sigs:
        name, sep, b64 = sig.partition(":")
        try:
            raw = base64.b64decode(b64, validate=True) if sep else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 64:
            checks.append(SigCheck(key_name=name if sep else sig[:40], status=SigStatus.malformed))
        elif name not in keys:
            checks.append(SigCheck(key_name=name, status=SigStatus.unknown_key))
        elif any(k.verify(raw, fp) for k in keys[name]):
            checks.append(SigCheck(key_name=name, status=SigStatus.valid))
        else:
            checks.append(SigCheck(key_name=name, status=SigStatus.invalid))
    return SignatureReport(fingerprint=fp.decode(), checks=checks)


def sign_narinfo(info: NarInfo, secret: SecretKey, *, replace: bool = True) -> NarInfo:
    """A copy of ``info`` signed with ``secret`` (replacing its other signatures by default)."""
    sig = secret.sign(info.fingerprint().encode())
    sigs = [sig] if replace else [*info.sigs, sig]
    return info.model_copy(update={"sigs": sigs})
