"""What the local Nix store says about the paths ``orchestrator verify`` checks.

``nix path-info --json`` gives each path's NAR hash and size, references, deriver, signatures
and whether this machine built it (``ultimate``); ``LocalPath.origin`` turns that into the one
question verify asks first: was it built here, added here, or substituted from a cache?
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import OrchestratorError
from orchestrator.formats.hashes import Hash, parse_hash
from orchestrator.formats.storepath import STORE_DIR, check_store_path, store_path_of
from orchestrator.nixcli import nix_json


class LocalPath(BaseModel):
    """What the local store says about a path (``nix path-info --json``)."""

    model_config = ConfigDict(frozen=True)

    path: str
    valid: bool
    nar_hash: Hash | None = None
    nar_size: int | None = None
    references: list[str] = Field(default_factory=list)
    deriver: str | None = None
    ultimate: bool = False
    signatures: list[str] = Field(default_factory=list)
    ca: str | None = None
    installable: str | None = None  # the TARGET the user named, when not a store path

    @property
    def origin(self) -> Literal["built", "added", "substituted", "missing"]:
        """``built``: Nix built it here (``ultimate``). ``added``: content-addressed and added
        here (a source; its content is pinned by its hash). ``substituted``: copied from a
        cache, so comparing it with that cache proves nothing."""
        if not self.valid:
            return "missing"
        if self.ultimate:
            return "built"
        if self.ca and not self.signatures:
            return "added"
        return "substituted"

    @classmethod
    def from_path_info(cls, entry: dict[str, Any], installable: str | None = None) -> LocalPath:
        if entry.get("valid") is False:
            return cls(path=entry["path"], valid=False, installable=installable)
        return cls(
            path=entry["path"],
            valid=True,
            nar_hash=parse_hash(entry["narHash"]),
            nar_size=int(entry["narSize"]),
            references=list(entry.get("references") or []),
            deriver=entry.get("deriver"),
            ultimate=bool(entry.get("ultimate", False)),
            signatures=list(entry.get("signatures") or []),
            ca=entry.get("ca"),
            installable=installable,
        )


def target_store_path(target: str, store_dir: str = STORE_DIR) -> str | None:
    """The store path a TARGET names, or ``None`` for an installable Nix should resolve.

    A store path (or a path inside one) is cut to the store path. A TARGET that exists on disk
    is a local path, never a flake reference: ``result`` or ``./result`` (a symlink into the
    store, as ``nix build`` leaves it) is resolved to its store path; a directory holding a
    ``flake.nix`` is a flake, left to Nix; any other local path is an error, since it is
    outside the store."""
    sp = store_path_of(target, store_dir)
    if sp is not None:
        return sp
    looks_like_path = target.startswith(("/", "./", "../", "~")) or target in (".", "..")
    path = Path(target).expanduser()
    if not os.path.lexists(path):
        if looks_like_path and "#" not in target:
            raise OrchestratorError(
                f"TARGET {target!r}: no such file or directory",
                hint="name a store path, a link to one (./result) or an installable",
            )
        return None
    real = os.path.realpath(path)
    sp = store_path_of(real, store_dir)
    if sp is not None:
        return sp
    if os.path.isdir(real) and os.path.isfile(os.path.join(real, "flake.nix")):
        return None  # a flake directory: an installable
    raise OrchestratorError(
        f"TARGET {target!r} is a local path outside the Nix store ({real})",
        hint="name a store path, a link to one (./result) or an installable",
    )


def query_local(
    targets: Sequence[str], *, closure: bool = False, store_dir: str = STORE_DIR
) -> list[LocalPath]:
    """Resolve TARGETs (store paths, links to them, installables) to local path info, in the
    order given, each path once. With ``closure`` the runtime closure of every valid path is
    added after them."""
    resolved: list[str | list[LocalPath]] = []
    for t in targets:
        sp = target_store_path(t, store_dir)
        if sp is not None:
            resolved.append(sp)
        else:
            resolved.append(
                [LocalPath.from_path_info(e, installable=t) for e in nix_json(["path-info", t])]
            )
    wanted = list(dict.fromkeys(r for r in resolved if isinstance(r, str)))
    answers = _path_infos(wanted)
    found: dict[str, LocalPath] = {}
    for r in resolved:
        infos = (
            r
            if isinstance(r, list)
            else [LocalPath.from_path_info(answers.get(r, {"path": r, "valid": False}))]
        )
        for info in infos:
            found.setdefault(info.path, info)
    if closure:
        valid = [p for p, i in found.items() if i.valid]
        if valid:
            for entry in _path_infos(valid, recursive=True).values():
                info = LocalPath.from_path_info(entry)
                found.setdefault(info.path, info)
    return list(found.values())


# bytes of paths per `nix path-info` call: a Hydra build with tens of thousands of outputs
# would exceed the kernel's argument limit ("argument list too long") in one call
_BATCH_BYTES = 128 << 10


def _path_infos(paths: Sequence[str], *, recursive: bool = False) -> dict[str, Any]:
    """``nix path-info --json`` of store paths, in batches; by path."""
    out: dict[str, Any] = {}
    flags = ["--recursive"] if recursive else []
    batch: list[str] = []
    size = 0
    for p in [*paths, None]:
        if batch and (p is None or size + len(p) + 1 > _BATCH_BYTES):
            for e in nix_json(["path-info", *flags, *batch]):
                out.setdefault(e["path"], e)
            batch, size = [], 0
        if p is not None:
            batch.append(p)
            size += len(p) + 1
    return out


def query_store_paths(
    paths: Sequence[str], *, closure: bool = False, store_dir: str = STORE_DIR
) -> list[LocalPath]:
    """Like ``query_local`` for paths that came from elsewhere (a Hydra answer): each must be
    a store path by Nix's grammar (BadStorePath otherwise), so none can be taken by Nix as an
    installable -- a flake reference, a URL, an expression file it would evaluate and build."""
    for p in paths:
        check_store_path(p, store_dir)
    return query_local(paths, closure=closure, store_dir=store_dir)
