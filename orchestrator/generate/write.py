"""generate: tree -> Chain -> rendered files -> steps/, atomically; or --check for drift.

steps/ holds generated files only, except ``steps/overrides/`` (maintainers' data, never
generated) which is carried over untouched. Everything is rendered in memory first, so an error
leaves the old steps/ as it was; the new tree is written beside it and swapped in by rename.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from orchestrator.display import visible
from orchestrator.errors import GenerateError
from orchestrator.generate.render import render_steps
from orchestrator.generate.swap import remove, swap_in
from orchestrator.stage0.translate import render_stage0
from orchestrator.upstream.chain import Chain, load_chain
from orchestrator.upstream.names import is_relpath
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
    files = render_steps(chain)
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
        if rel.split("/", 1)[0] in PRESERVED:
            continue
        if p.is_symlink():
            # generate writes no symlinks; never read through one (it may point anywhere)
            out[rel] = f"(a symlink to {os.readlink(p)}, not followed)\n"
            continue
        if p.is_file():
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
    """The diff of one file, for a terminal: control characters made visible (display.py)."""
    text = "".join(
        difflib.unified_diff(
            old.get(path, "").splitlines(keepends=True),
            new.get(path, "").splitlines(keepends=True),
            fromfile=f"a/steps/{path}",
            tofile=f"b/steps/{path}",
            n=context,
        )
    )
    return visible(text, keep_newlines=True)


def staging_prefix(steps_dir: Path) -> str:
    return f".{steps_dir.name}-new-"  # .steps-new-XXXX beside steps/


def retired_prefixes(steps_dir: Path) -> tuple[str, ...]:
    # ours, and the backup name transaction.py gives any target it replaces
    return (f".{steps_dir.name}-old-", f".{steps_dir.name}.old-")


def check_relative(rel: str) -> None:
    """A generated path must stay below steps/: RELPATH of names.py, nothing else."""
    if not is_relpath(rel):
        raise GenerateError(
            f"refusing to write {rel!r}: not a plain relative path below steps/",
            hint="generated paths are built from names that passed the grammar in names.py; "
            "this is a bug in a renderer",
        )


@contextmanager
def steps_lock(steps_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on steps/'s parent directory while steps/ is staged and swapped.

    With the lock held, a ``.steps-new-*`` or ``.steps-old-*`` beside steps/ can only be the
    leftover of a run that was killed (the kernel drops a dead process's lock), so it is cleaned
    up here; a steps/ that a kill left missing between the two renames is first restored from
    its retired copy (it holds the maintainers' overrides/).
    """
    steps_dir = steps_dir.resolve()
    parent = steps_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _recover(steps_dir)
        yield
    finally:
        os.close(fd)  # releases the lock


def _recover(steps_dir: Path) -> None:
    parent = steps_dir.parent
    retired = [
        p
        for prefix in retired_prefixes(steps_dir)
        for p in parent.glob(prefix + "*")
        if p.is_dir() and not p.is_symlink()
    ]
    if retired and not steps_dir.exists() and not steps_dir.is_symlink():
        newest = max(retired, key=lambda p: p.stat().st_mtime)
        os.rename(newest, steps_dir)
        retired.remove(newest)
    staged = [
        p for p in parent.glob(staging_prefix(steps_dir) + "*") if p.is_dir() and not p.is_symlink()
    ]
    for leftover in staged + retired:
        shutil.rmtree(leftover)


def stage_steps(
    steps_dir: Path, files: dict[str, str], override_changes: dict[str, str | None] | None = None
) -> Path:
    """Write the new steps/ beside the old one: ``files``, plus ``overrides/`` carried over with
    ``override_changes`` applied (file name -> new text, or None to remove it).

    Call it under ``steps_lock``. Every path is checked before anything is written, and each
    file is created with O_EXCL inside the fresh staging directory, so nothing can be written
    outside it (not through ``..``, not through a symlink).
    """
    for rel in files:
        check_relative(rel)
    for name in override_changes or {}:
        check_relative(f"overrides/{name}")
    steps_dir = steps_dir.resolve()
    steps_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(steps_dir), dir=steps_dir.parent))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
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
    with steps_lock(steps_dir):
        staging = stage_steps(steps_dir, files)
        try:
            retired = swap_in(staging, steps_dir, retired_prefixes(steps_dir)[0])
        except BaseException:
            remove(staging)
            raise
        if retired is not None:
            remove(retired)


def generate(
    tree: SourceTree, steps_dir: Path, *, profile: str = "nix"
) -> tuple[Drift, dict[str, str]]:
    chain = apply_overrides(load_chain(tree, profile), load_overrides(steps_dir))
    old = read_existing(steps_dir)
    files, kept = render_all(tree, chain, steps_dir)
    return compare(files, old, kept), files
