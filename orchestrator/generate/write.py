"""generate: tree -> Chain -> rendered files -> steps/, atomically; or --check for drift.

steps/ holds generated files only, except ``steps/overrides/`` (maintainers' data, never
generated) which is carried over untouched. Everything is rendered in memory first, so an error
leaves the old steps/ as it was; the new tree is written beside it and swapped in by rename.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from orchestrator.generate.render import render_steps
from orchestrator.stage0.translate import render_stage0
from orchestrator.upstream.chain import Chain, load_chain
from orchestrator.upstream.overrides import apply_overrides, load_overrides
from orchestrator.upstream.tree import SourceTree

PRESERVED = ("overrides",)  # subdirectories of steps/ that generation never owns

# Renderers of parts other than the chain: (tree, the committed steps/<prefix> or None) ->
# ({path: text}, [paths kept from the committed files]). A renderer that cannot run on a tree
# keeps committed files only after checking them (it raises otherwise).
EXTRA_RENDERERS: list[
    tuple[str, Callable[[SourceTree, Path | None], tuple[dict[str, str], list[str]]]]
] = [("stage0", render_stage0)]


class Drift(BaseModel):
    added: list[str]
    removed: list[str]
    changed: list[str]
    kept: list[str]  # committed files of a renderer that could not run here, checked and kept

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.changed)


def render_all(
    tree: SourceTree, chain: Chain, current: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    files = render_steps(tree, chain)
    kept: list[str] = []
    for prefix, renderer in EXTRA_RENDERERS:
        out, part_kept = renderer(tree, current / prefix if current is not None else None)
        files.update({f"{prefix}/{rel}": text for rel, text in out.items()})
        kept += [f"{prefix}/{rel}" for rel in part_kept]
    return files, kept


def read_existing(steps_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not steps_dir.is_dir():
        return out
    for p in sorted(steps_dir.rglob("*")):
        rel = p.relative_to(steps_dir).as_posix()
        if rel.split("/", 1)[0] in PRESERVED or not p.is_file():
            continue
        out[rel] = p.read_text()
    return out


def compare(new: dict[str, str], old: dict[str, str], kept: list[str]) -> Drift:
    return Drift(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(p for p in set(new) & set(old) if new[p] != old[p]),
        kept=kept,
    )


def unified(new: dict[str, str], old: dict[str, str], path: str, context: int = 2) -> str:
    return "".join(
        difflib.unified_diff(
            old.get(path, "").splitlines(keepends=True),
            new.get(path, "").splitlines(keepends=True),
            fromfile=f"a/steps/{path}",
            tofile=f"b/steps/{path}",
            n=context,
        )
    )


def stage_steps(
    steps_dir: Path, files: dict[str, str], override_changes: dict[str, str | None] | None = None
) -> Path:
    """Write the new steps/ beside the old one: ``files``, plus ``overrides/`` carried over with
    ``override_changes`` applied (file name -> new text, or None to remove it)."""
    steps_dir = steps_dir.resolve()
    steps_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".steps-new-", dir=steps_dir.parent))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for keep in PRESERVED:
            if (steps_dir / keep).exists():
                shutil.copytree(steps_dir / keep, staging / keep, symlinks=True)
        for name, content in (override_changes or {}).items():
            path = staging / "overrides" / name
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        overrides = staging / "overrides"
        if overrides.is_dir() and not any(overrides.iterdir()):
            overrides.rmdir()
        os.chmod(staging, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def write_atomically(steps_dir: Path, files: dict[str, str]) -> None:
    """Stage the new steps/ beside the old one, then swap it in by rename."""
    steps_dir = steps_dir.resolve()
    staging = stage_steps(steps_dir, files)
    try:
        if steps_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=".steps-old-", dir=steps_dir.parent))
            os.rmdir(retired)
            os.rename(steps_dir, retired)
            os.rename(staging, steps_dir)
            shutil.rmtree(retired)
        else:
            os.rename(staging, steps_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def generate(
    tree: SourceTree, steps_dir: Path, *, profile: str = "nix"
) -> tuple[Drift, dict[str, str]]:
    chain = apply_overrides(load_chain(tree, profile), load_overrides(steps_dir))
    old = read_existing(steps_dir)
    files, kept = render_all(tree, chain, steps_dir)
    return compare(files, old, kept), files
