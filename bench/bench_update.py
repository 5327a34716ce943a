#!/usr/bin/env python3
"""`update --dry-run` between the two fixture revisions (issue 5 target: < 2 s).

A scratch copy of the flake gets steps/ generated from the 2025-02 revision (not timed); then
`python -m orchestrator update --dry-run --to-path <2026-02 revision> --json` is timed, as a user
runs it (a fresh interpreter, imports included), and in-process (the work alone).
Run from the repository root: python bench/bench_update.py [OLD_TREE NEW_TREE]
(default: the two data-only fixtures beside the repository).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.cli import main as cli_main  # noqa: E402

FIXTURES = REPO.parent / "shared/fixtures/live-bootstrap"


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), max(runs)


def main() -> None:
    old, new = (
        (Path(sys.argv[1]), Path(sys.argv[2]))
        if len(sys.argv) > 2
        else (FIXTURES / "01257b3b", FIXTURES / "984b8322")
    )
    with tempfile.TemporaryDirectory() as tmp:
        flake = Path(tmp) / "flake"
        flake.mkdir()
        for name in ("flake.nix", "flake.lock"):
            shutil.copy2(REPO / name, flake / name)
        quiet = io.StringIO()
        with contextlib.redirect_stderr(quiet):
            assert (
                cli_main(
                    ["generate", "--live-bootstrap", str(old), "--output", str(flake / "steps")]
                )
                == 0
            )
        argv = ["update", "--dry-run", "--to-path", str(new), "--flake", str(flake), "--json"]

        def subprocess_run() -> None:
            proc = subprocess.run(
                [sys.executable, "-m", "orchestrator", *argv],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stderr
            json.loads(proc.stdout)

        def in_process() -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                assert cli_main(argv) == 0
            json.loads(out.getvalue())

        med, worst = timed(subprocess_run)
        print(
            f"update --dry-run {old.name} -> {new.name}, fresh interpreter: median {med:.3f} s, max {worst:.3f} s  (target < 2 s)"
        )
        med_in, worst_in = timed(in_process)
        print(
            f"update --dry-run {old.name} -> {new.name}, in-process:        median {med_in:.3f} s, max {worst_in:.3f} s"
        )
        if med >= 2.0:
            sys.exit(1)


if __name__ == "__main__":
    main()
