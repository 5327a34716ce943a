"""What a bump costs in builds under early cutoff (nix/cutoff.nix, docs/runner.md).

A step whose package is pinned in SHA256SUMS.pkgs reaches later steps as a layer whose store
path depends only on the package file name, its pin and tools built from stage0-posix: an
unchanged pin keeps the layer, and Nix never builds that step again (a changed stage0-posix
re-makes the layer from the same package: an unpack, not a build). Every other step (the kaem
era, improve, uninstall, unpinned builds) is input-addressed over the seed stage, whose root
holds live-bootstrap's whole steps/ directory: any change under steps/ rebuilds all of them
(they are the cheap ones). Nothing changed under steps/: nothing is rebuilt.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.upstream.chain import Chain, StepInfo
from orchestrator.upstream.tree import SourceTree


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CostStep(_Model):
    attr: str  # in the new revision
    reason: str


class RebuildCost(_Model):
    steps_changed: bool  # anything under steps/ differs (or cannot be compared: then assumed)
    rebuilt: list[CostStep] = Field(default_factory=list)
    kept: list[CostStep] = Field(default_factory=list)


def steps_digest(tree: SourceTree) -> str | None:
    """sha256 over every path and file of steps/, or None when the tree does not hold them all
    (a data-only snapshot)."""
    h = hashlib.sha256()
    todo = ["steps"]
    while todo:
        d = todo.pop()
        for name in sorted(tree.list_dir(d)):
            path = f"{d}/{name}"
            if tree.is_dir(path):
                todo.append(path)
                continue
            if not tree.has_content(path):
                return None
            data = tree.read_bytes(path)
            h.update(f"{path}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def _steps_changed(old_tree: SourceTree, old: Chain, new_tree: SourceTree, new: Chain) -> bool:
    a, b = steps_digest(old_tree), steps_digest(new_tree)
    if a is not None and b is not None:
        return a != b
    return old.commit is None or new.commit is None or old.commit != new.commit


def _key(s: StepInfo) -> tuple[str, str]:
    return (s.package_file or "", s.package_sha256 or "")


def rebuild_cost(old_tree: SourceTree, old: Chain, new_tree: SourceTree, new: Chain) -> RebuildCost:
    changed = _steps_changed(old_tree, old, new_tree, new)
    old_pinned = {_key(s) for s in old.steps if s.pinned_package}
    old_files = {s.package_file for s in old.steps if s.pinned_package}
    rebuilt: list[CostStep] = []
    kept: list[CostStep] = []
    for s in new.steps:
        attr = s.step.attr_name
        if s.pinned_package:
            if _key(s) in old_pinned:
                kept.append(CostStep(attr=attr, reason=f"pin of {s.package_file} unchanged"))
            elif s.package_file in old_files:
                rebuilt.append(CostStep(attr=attr, reason=f"pin of {s.package_file} changed"))
            else:
                rebuilt.append(CostStep(attr=attr, reason=f"{s.package_file} newly pinned"))
        elif changed:
            rebuilt.append(CostStep(attr=attr, reason="not a pinned package, and steps/ changed"))
        else:
            kept.append(CostStep(attr=attr, reason="nothing under steps/ changed"))
    return RebuildCost(steps_changed=changed, rebuilt=rebuilt, kept=kept)
