"""``orchestrator distfiles seed DIR``: put local distfiles into the store where the Nix expects them.

A generated distfile is ``builtin:fetchurl`` with ``outputHashMode = "flat"``, ``sha256`` and
``name`` = the file name (``nix/fetchers.nix``). Its output path depends on name and hash only:

    store path = makeFixedOutputPath(flat, sha256, name)
               = /nix/store/<nix32(compress20(sha256("output:out:sha256:" + H + ":/nix/store:" + name)))>-<name>
    H          = hex(sha256("fixed:out:sha256:" + hex(file sha256) + ":"))

and ``nix-store --add-fixed sha256 FILE`` produces exactly that path for a file named ``name``
(checked here on every add, and against ``nix eval`` of the generated derivations in the tests).
So after seeding, Nix finds the output valid and never runs the fetcher: the build is offline.

Every file's sha256 is verified before it is added; a file with the wrong bytes is reported
``mismatched`` and not added.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import nixcli
from orchestrator.errors import NixError, OrchestratorError
from orchestrator.formats.filehash import sha256_file
from orchestrator.formats.storepath import fixed_output_path


class DistfileSpec(BaseModel):
    """What the generated Nix pins for one distfile."""

    model_config = ConfigDict(frozen=True)

    filename: str
    sha256: str
    urls: list[str] = Field(default_factory=list)
    git: dict[str, str] | None = None
    steps: list[str] = Field(default_factory=list)


Status = Literal["present", "missing", "mismatched"]


class SeedResult(BaseModel):
    filename: str
    sha256: str
    store_path: str
    status: Status
    detail: str  # "added", "already in the store", "not in DIR", the wrong hash …
    source: str | None = None  # the file in DIR
    actual_sha256: str | None = None


def chain_distfiles(
    live_bootstrap: str | None = None, until: str | None = None
) -> list[DistfileSpec]:
    """The distfiles the generated steps fetch, in chain order (up to ``until``, a step)."""
    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.locate import read_tree

    chain = load_chain(read_tree(live_bootstrap))
    attrs = [s.step.attr_name for s in chain.steps]
    steps = chain.steps
    if until is not None:
        if until not in attrs:
            raise OrchestratorError(
                f"--until {until}: no such step",
                hint="`python -m orchestrator plan` lists the steps",
            )
        steps = steps[: attrs.index(until) + 1]
    seen: dict[str, DistfileSpec] = {}
    users: dict[str, list[str]] = {}
    for s in steps:
        for name in s.distfiles:
            users.setdefault(name, []).append(s.step.attr_name)
            if name not in seen:
                d = chain.distfile(name)
                seen[name] = DistfileSpec(
                    filename=d.filename,
                    sha256=d.sha256,
                    urls=d.urls,
                    git={"repo": d.git_repo, "ref": d.git_ref or ""} if d.git_repo else None,
                )
    return [d.model_copy(update={"steps": users[d.filename]}) for d in seen.values()]


def load_list(path: str) -> list[DistfileSpec]:
    """A distfile list as ``distfiles list --json`` prints it (or any subset of it)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise OrchestratorError(f"cannot read the distfile list: {exc}", file=path) from None
    if not isinstance(data, list):
        raise OrchestratorError("expected a JSON list of distfiles", file=path)
    out = []
    for i, item in enumerate(data):
        try:
            out.append(
                DistfileSpec(
                    filename=item["filename"],
                    sha256=item["sha256"],
                    urls=list(item.get("urls") or []),
                    git=item.get("git"),
                    steps=list(item.get("steps") or []),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OrchestratorError(f"entry {i}: {exc}", file=path) from None
    return out


def add_to_store(file: Path, spec: DistfileSpec) -> str:
    """``nix-store --add-fixed`` under the distfile's own name; checks the resulting path."""
    expected = fixed_output_path(spec.filename, spec.sha256)
    src = file
    tmpdir = None
    if file.name != spec.filename:  # the store name is the file's base name
        tmpdir = tempfile.mkdtemp(prefix="seed-")
        src = Path(tmpdir) / spec.filename
        try:
            os.link(file, src)
        except OSError:
            shutil.copyfile(file, src)
    try:
        got = nixcli.add_fixed_sha256(src)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if got != expected:
        raise NixError(
            f"nix-store --add-fixed put {spec.filename} at {got}, but the generated Nix expects {expected}",
            hint="the fixed-output path scheme differs from this Nix's; please report it",
        )
    return got


def seed(directory: Path, specs: list[DistfileSpec]) -> list[SeedResult]:
    if not directory.is_dir():
        raise OrchestratorError(
            "not a directory",
            file=directory,
            hint="pass live-bootstrap's distfiles/ or a mirror.sh mirror",
        )
    paths = {s.filename: fixed_output_path(s.filename, s.sha256) for s in specs}
    invalid = nixcli.invalid_paths(list(paths.values())) if paths else set()
    results: list[SeedResult] = []
    for spec in specs:
        path = paths[spec.filename]
        file = directory / spec.filename
        base = {"filename": spec.filename, "sha256": spec.sha256, "store_path": path}
        if path not in invalid:
            results.append(
                SeedResult(
                    **base,
                    status="present",
                    detail="already in the store",
                    source=str(file) if file.is_file() else None,
                )
            )
            continue
        if not file.is_file():
            results.append(SeedResult(**base, status="missing", detail=f"not in {directory}"))
            continue
        actual = sha256_file(file)
        if actual != spec.sha256.lower():
            results.append(
                SeedResult(
                    **base,
                    status="mismatched",
                    detail="wrong sha256: not added",
                    source=str(file),
                    actual_sha256=actual,
                )
            )
            continue
        add_to_store(file, spec)
        results.append(
            SeedResult(
                **base, status="present", detail="added", source=str(file), actual_sha256=actual
            )
        )
    return results
