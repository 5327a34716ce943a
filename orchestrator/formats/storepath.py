"""Store paths as text: ``/nix/store/<32-char nix32 hash>-<name>``."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from orchestrator.formats import nix32

STORE_DIR = os.environ.get("NIX_STORE_DIR", "/nix/store")
HASH_LEN = 32
_HASH_RE = re.compile(r"^[0-9a-df-np-sv-z]{32}$")


def is_hash_part(text: str) -> bool:
    return bool(_HASH_RE.match(text))


def store_path_of(target: str, store_dir: str = STORE_DIR) -> str | None:
    """``/nix/store/<hash>-<name>[/sub/path]`` -> the store path; anything else -> ``None``."""
    prefix = store_dir.rstrip("/") + "/"
    if not target.startswith(prefix):
        return None
    base = target[len(prefix) :].split("/", 1)[0]
    if len(base) < HASH_LEN + 2 or not is_hash_part(base[:HASH_LEN]) or base[HASH_LEN] != "-":
        return None
    return prefix + base


def hash_part(path: str) -> str:
    return Path(path).name[:HASH_LEN]


def store_name(path: str) -> str:
    return Path(path).name[HASH_LEN + 1 :]


# Nix's own grammar of a store path name (libstore/path.cc, checkName): at most 211
# characters of [A-Za-z0-9+-._?=], not starting with a period. Anything else is not a store path
# to Nix -- and a string that is not a store path is an *installable* to `nix path-info`.
NAME_MAX = 211
_NAME_RE = re.compile(r"[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]{0,210}")


class BadStorePath(ValueError):
    """Text that is not a store path by Nix's grammar."""


def check_store_path(text: object, store_dir: str = STORE_DIR) -> str:
    """``text`` if it is exactly ``<store_dir>/<32 nix32 chars>-<name>`` (no trailing ``/``, no
    sub-path), else BadStorePath naming what is wrong."""
    if not isinstance(text, str):
        raise BadStorePath(f"not a string: {text!r}")
    prefix = store_dir.rstrip("/") + "/"
    if not text.startswith(prefix):
        raise BadStorePath(f"{text!r} is not in the store {store_dir}")
    base = text[len(prefix) :]
    if "/" in base:
        raise BadStorePath(f"{text!r} is not a store path (it has a sub-path)")
    check_base_name(base, text)
    return text


def check_base_name(base: str, shown: str | None = None) -> str:
    """``base`` if it is ``<32 nix32 chars>-<name>`` (a store path without its directory, as
    narinfo ``References`` and ``Deriver`` write it), else BadStorePath."""
    what = repr(shown if shown is not None else base)
    if len(base) < HASH_LEN + 2 or not is_hash_part(base[:HASH_LEN]) or base[HASH_LEN] != "-":
        raise BadStorePath(f"{what} is not a store path (no <32 nix32 chars>-<name>)")
    if not _NAME_RE.fullmatch(base[HASH_LEN + 1 :]):
        raise BadStorePath(
            f"{what} is not a store path (the name is not {NAME_MAX} characters at most "
            "of A-Z a-z 0-9 + - . _ ? =, or starts with a period)"
        )
    return base


def check_store_dir(text: str) -> str:
    """An absolute, canonical store directory (no empty, ``.`` or ``..`` component)."""
    parts = text.split("/")
    if not text.startswith("/") or any(p in ("", ".", "..") for p in parts[1:]):
        raise BadStorePath(f"{text!r} is not a canonical absolute store directory")
    return text


def is_store_path(text: object, store_dir: str = STORE_DIR) -> bool:
    try:
        check_store_path(text, store_dir)
    except BadStorePath:
        return False
    return True


def _compress(digest: bytes, size: int = 20) -> bytes:
    """Nix's compressHash: XOR-fold a digest to ``size`` bytes."""
    out = bytearray(size)
    for i, b in enumerate(digest):
        out[i % size] ^= b
    return bytes(out)


def fixed_output_path(name: str, sha256_hex: str, store_dir: str = STORE_DIR) -> str:
    """Store path of a flat sha256 fixed output (``builtin:fetchurl``, ``--add-fixed sha256``)."""
    inner = hashlib.sha256(f"fixed:out:sha256:{sha256_hex.lower()}:".encode()).hexdigest()
    fingerprint = f"output:out:sha256:{inner}:{store_dir}:{name}"
    digest = _compress(hashlib.sha256(fingerprint.encode()).digest())
    return f"{store_dir}/{nix32.encode(digest)}-{name}"
