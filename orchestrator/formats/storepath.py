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
