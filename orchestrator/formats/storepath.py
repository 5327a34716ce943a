"""Store paths as text: ``/nix/store/<32-char nix32 hash>-<name>``."""

from __future__ import annotations

import os
import re
from pathlib import Path

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
