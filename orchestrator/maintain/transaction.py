"""All-or-nothing changes to the repository: steps/ (with its overrides/), flake.nix, flake.lock.

``update`` moves the pin and regenerates; ``bump`` adds an override and regenerates. Either the
whole change lands or none of it: everything is rendered in memory and staged beside its target
first (so a full disk or a render error changes nothing), then each target is swapped in by
rename, keeping the old one; if any rename fails, the swaps already done are undone in reverse.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from orchestrator.generate.swap import remove, swap_in, undo
from orchestrator.generate.write import stage_steps, steps_lock


class Transaction:
    def __init__(self) -> None:
        self._files: dict[Path, str] = {}
        self._steps: tuple[Path, dict[str, str], dict[str, str | None]] | None = None

    def write(self, path: Path, text: str) -> None:
        self._files[Path(path)] = text

    def replace_steps(
        self,
        steps_dir: Path,
        files: dict[str, str],
        override_changes: dict[str, str | None] | None = None,
    ) -> None:
        """steps/ becomes ``files``; ``overrides/`` is carried over with ``override_changes``
        applied (file name -> new text, or None to remove it)."""
        self._steps = (Path(steps_dir), files, dict(override_changes or {}))

    def commit(self) -> None:
        with ExitStack() as stack:
            if self._steps is not None:
                # the same lock generate takes: no other run swaps steps/ meanwhile, and what a
                # killed run left beside steps/ is cleaned (or restored) first
                stack.enter_context(steps_lock(self._steps[0]))
            self._commit()

    def _commit(self) -> None:
        staged: list[tuple[Path, Path]] = []  # (staged, target)
        try:
            if self._steps is not None:
                staged.append(self._stage_steps(*self._steps))
            for target, text in self._files.items():
                fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.new-", dir=target.parent)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
                if target.exists():
                    os.chmod(tmp_name, target.stat().st_mode & 0o777)
                else:
                    os.chmod(tmp_name, 0o644)
                staged.append((Path(tmp_name), target))
        except BaseException:
            for staged_path, _ in staged:
                remove(staged_path)
            raise
        done: list[tuple[Path, Path | None]] = []  # (target, backup)
        try:
            for tmp, target in staged:
                done.append((target, swap_in(tmp, target, f".{target.name}.old-")))
        except BaseException:
            for target, backup in reversed(done):
                undo(target, backup)
            for staged_path, _ in staged:
                remove(staged_path)
            raise
        for _, backup in done:
            if backup is not None:
                remove(backup)

    @staticmethod
    def _stage_steps(
        steps_dir: Path, files: dict[str, str], override_changes: dict[str, str | None]
    ) -> tuple[Path, Path]:
        return stage_steps(steps_dir, files, override_changes), steps_dir.resolve()
