"""What ``steps/stage0/*.json`` were generated from, recorded beside them, and the gate over it.

The stage0 translation reads stage0-posix's kaem scripts, which are upstream code: a data-only
snapshot does not carry them, so it cannot regenerate ``steps/stage0/``. Instead of keeping the
committed files on trust, generation writes ``steps/stage0/meta.json``:

- ``stage0_posix_commit``: the stage0-posix commit (the submodule at ``seed/stage0-posix``) and
  ``live_bootstrap``, the live-bootstrap commit that pins it;
- ``inputs``: the sha256 of every file whose text the translation read (the scripts, the
  ``*.answers`` lists), by live-bootstrap-relative path;
- ``files``: the sha256 of each generated ``steps/stage0/<arch>.json``.

On a tree without the scripts, the committed files are kept only when every one of them has its
recorded hash, the tree names the same stage0-posix commit (or, when it names none, is the
live-bootstrap revision the record was made at, which pins that submodule: the committed
``steps/upstream.json`` snapshot), and every recorded input the tree carries has its recorded
hash; anything else is an error naming the file. ``nix/freshness.nix``
checks the same record against the flake's real input (file hashes; the input has no git
metadata, so the commit is the Python gate's part).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError, field_validator

from orchestrator.errors import ParseError, StaleError
from orchestrator.gitcli import git_or_none
from orchestrator.stage0.kaem import STAGE0
from orchestrator.upstream.tree import SourceTree, read_regular

RECORD = "meta.json"  # under steps/stage0/
# A data-only snapshot may carry stage0-posix's data files (COMMIT, *.answers) in a directory
# of this name at its top, as the shared fixtures do; the scripts are code and never there.
DATA_MIRROR = "stage0-posix"
_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+\.json")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Stage0Record(BaseModel):
    live_bootstrap: str | None  # the live-bootstrap commit whose submodule is stage0_posix_commit
    stage0_posix: str = STAGE0  # where the submodule lives in live-bootstrap
    stage0_posix_commit: str | None  # None: generated from a tree that could not name it
    inputs: dict[str, str]  # live-bootstrap-relative path -> sha256 of the bytes read
    files: dict[str, str]  # name under steps/stage0/ -> sha256 of its bytes

    @field_validator("files")
    @classmethod
    def _file_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _FILE_NAME.fullmatch(name) or name == RECORD:
                raise ValueError(f"{name!r} is not a generated file name under steps/stage0/")
        return v

    @field_validator("inputs")
    @classmethod
    def _input_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for path in v:
            parts = path.split("/")
            if not path.startswith(STAGE0 + "/") or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"{path!r} is not a path below {STAGE0}/")
        return v

    @field_validator("files", "inputs")
    @classmethod
    def _hashes(cls, v: dict[str, str]) -> dict[str, str]:
        for key, digest in v.items():
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"{key}: {digest!r} is not a sha256 in hex")
        return v

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"


class Stage0Drift(StaleError):
    """steps/stage0/ does not match its record, or the record does not match the tree."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_record(path: Path) -> Stage0Record:
    try:
        return Stage0Record.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        raise ParseError(f"not a stage0 record ({where}: {first['msg']})", file=path) from None


def submodule_commit(tree: SourceTree) -> str | None:
    """The stage0-posix commit the tree itself names, or None: the data-only listing's gitlink,
    the snapshot's ``stage0-posix/COMMIT``, the checked-out submodule's HEAD, the checkout's
    gitlink (submodules not checked out)."""
    if tree.entries is not None:
        entry = tree.entries.get(STAGE0)
        if entry is not None and entry.kind == "submodule" and entry.object_id:
            return entry.object_id
    if tree.contents is not None:  # an embedded snapshot: only its listing can tell
        return None
    if tree.data_only:
        commit = tree.root / DATA_MIRROR / "COMMIT"
        if commit.is_file():
            # read as a regular file only; bytes that are not text never name a commit
            words = read_regular(commit).decode("ascii", errors="replace").split()
            return words[0] if words else None
    sub = tree.root / STAGE0
    if (sub / ".git").exists():
        return git_or_none(sub, "rev-parse", "HEAD")
    if (tree.root / ".git").exists():
        return git_or_none(tree.root, "rev-parse", f"HEAD:{STAGE0}")
    return None


def _snapshot_commit(live_bootstrap: str) -> str | None:
    """The gitlink as a data-only snapshot of the same live-bootstrap revision lists it."""
    from orchestrator.upstream.locate import _from_snapshots

    snap = _from_snapshots(live_bootstrap)
    return submodule_commit(SourceTree.open(snap)) if snap is not None else None


def commit_for(tree: SourceTree, committed: Stage0Record | None) -> str | None:
    """The stage0-posix commit to record for a tree the translation ran over. A gitlink is a
    function of the superproject commit, so when the tree cannot name it (an exported tree, the
    flake input in the store), it comes from what names the same live-bootstrap revision: the
    committed record, else a data-only snapshot of that revision."""
    own = submodule_commit(tree)
    if own is not None or tree.commit is None:
        return own
    if committed is not None and committed.live_bootstrap == tree.commit:
        return committed.stage0_posix_commit
    return _snapshot_commit(tree.commit)


def read_committed(committed: Path | None) -> Stage0Record | None:
    if committed is None or not (committed / RECORD).is_file():
        return None
    return load_record(committed / RECORD)


def _input_bytes(tree: SourceTree, path: str) -> bytes | None:
    """A recorded input's bytes as this tree has them, or None when it does not carry them."""
    if tree.has_content(path):
        return tree.read_bytes(path)
    if tree.data_only and tree.contents is None and path.startswith(STAGE0 + "/"):
        mirror = tree.root / DATA_MIRROR / path.removeprefix(STAGE0 + "/")
        if mirror.is_file():
            return mirror.read_bytes()
    return None


def keep_checked(tree: SourceTree, committed: Path | None) -> tuple[dict[str, str], list[str]]:
    """For a tree without the stage0-posix scripts: the committed steps/stage0 files, after
    checking them against their record and the record against the tree; ({}, []) when nothing
    is committed. Raises Stage0Drift naming every mismatch."""
    if committed is None or not committed.is_dir():
        return {}, []
    record_path = committed / RECORD
    hint = (
        "generate from a live-bootstrap checkout with submodules (or the pinned flake input), "
        "which regenerates steps/stage0"
    )
    if not record_path.is_file():
        raise Stage0Drift(
            "no record of what steps/stage0 was generated from, so this tree (without the "
            "stage0-posix scripts) cannot check it",
            file=record_path,
            hint=hint,
        )
    record = load_record(record_path)
    problems: list[str] = []

    present = sorted(
        p.relative_to(committed).as_posix()
        for p in committed.rglob("*")
        if p.is_file() and p.name != RECORD
    )
    for name in present:
        if name not in record.files:
            problems.append(f"steps/stage0/{name}: not in the record")
    for name, expected in sorted(record.files.items()):
        path = committed / name
        if not path.is_file():
            problems.append(f"steps/stage0/{name}: recorded, but missing")
            continue
        actual = sha256(path.read_bytes())
        if actual != expected:
            problems.append(
                f"steps/stage0/{name}: sha256 {actual}, the record says {expected} "
                "(changed after generation)"
            )

    commit = submodule_commit(tree)
    if commit is None and tree.commit is not None and tree.commit == record.live_bootstrap:
        pass  # the revision the record was made at (a gitlink is a function of the commit)
    elif commit is None:
        problems.append(
            f"{STAGE0}: this tree does not name its stage0-posix commit (no gitlink in "
            "ls-tree.txt, no stage0-posix/COMMIT, no git metadata)"
        )
    elif commit != record.stage0_posix_commit:
        problems.append(
            f"{STAGE0}: this tree has stage0-posix {commit}, steps/stage0 was generated from "
            f"{record.stage0_posix_commit or 'a tree that did not name its commit'}"
        )
    for path_, expected in sorted(record.inputs.items()):
        data = _input_bytes(tree, path_)
        if data is not None and sha256(data) != expected:
            problems.append(
                f"{path_}: sha256 {sha256(data)} in this tree, steps/stage0 was generated from "
                f"{expected}"
            )

    if problems:
        raise Stage0Drift(
            "steps/stage0 does not match what it was generated from:\n  " + "\n  ".join(problems),
            file=record_path,
            hint=hint,
        )
    files = {name: (committed / name).read_text(encoding="utf-8") for name in record.files}
    files[RECORD] = record.model_copy(update={"live_bootstrap": tree.commit}).to_json()
    return files, sorted(record.files)


def record_for(
    tree: SourceTree, committed: Path | None, inputs: dict[str, str], files: dict[str, str]
) -> str:
    """meta.json for a translation that ran over ``tree``."""
    try:
        prior = read_committed(committed)
    except ParseError:
        prior = None  # regeneration replaces a broken record
    return Stage0Record(
        live_bootstrap=tree.commit,
        stage0_posix_commit=commit_for(tree, prior),
        inputs=dict(sorted(inputs.items())),
        files={name: sha256(text.encode("utf-8")) for name, text in sorted(files.items())},
    ).to_json()
