"""``orchestrator generate [--live-bootstrap PATH] [--check]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from orchestrator.commands import options
from orchestrator.display import text
from orchestrator.errors import StaleError
from orchestrator.generate.write import (
    generate,
    read_existing,
    steps_lock,
    unified,
    write_atomically,
)
from orchestrator.upstream.locate import REPO_ROOT, locate_tree

err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("generate", help="(re)write steps/ from a live-bootstrap tree")
    options.live_bootstrap(p, default="the pinned flake input")
    p.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        default=REPO_ROOT / "steps",
        help="steps directory to write (default: the repository's steps/)",
    )
    p.add_argument(
        "--commit",
        metavar="REV",
        help="the upstream commit of --live-bootstrap, when the tree cannot tell (no .git, no COMMIT)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a summary if steps/ is stale",
    )
    p.add_argument("--diff", action="store_true", help="with --check: print the unified diff too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tree = locate_tree(args.live_bootstrap, log=lambda m: err.print(text(m)))
    if args.commit:
        tree = tree.model_copy(update={"commit": args.commit})
    if not args.check and args.output.resolve().parent.is_dir():
        # a killed run's leftovers beside steps/ are cleaned, or its steps/ restored, before
        # anything (overrides included) is read from it
        with steps_lock(args.output):
            pass
    drift, files = generate(tree, args.output)
    if drift.kept:
        err.print(
            f"kept {len(drift.kept)} committed file(s) this tree cannot regenerate (e.g. "
            f"steps/{drift.kept[0]}: a data-only snapshot lacks the stage0 kaem scripts), after "
            "checking each against its recorded hash and the record against this tree",
            markup=False,
        )
    if args.check:
        if drift.clean:
            err.print(f"steps/ is up to date ({len(files)} files)", markup=False)
            return 0
        old = read_existing(args.output)
        lines = [
            f"steps/ is stale: {len(drift.added)} to add, {len(drift.removed)} to remove, {len(drift.changed)} changed"
        ]
        for label, paths in (
            ("add", drift.added),
            ("remove", drift.removed),
            ("change", drift.changed),
        ):
            for p in paths[:10]:
                lines.append(f"  {label:6} steps/{p}")
            if len(paths) > 10:
                lines.append(f"  ... and {len(paths) - 10} more to {label}")
        if args.diff:
            for p in drift.added + drift.removed + drift.changed:
                print(unified(files, old, p), end="")
        raise StaleError(
            "\n".join(lines), hint="run `python -m orchestrator generate` and commit steps/"
        )
    if drift.clean:
        err.print(f"steps/ already up to date ({len(files)} files)", markup=False)
        return 0
    write_atomically(args.output, files)
    err.print(
        f"wrote steps/: {len(drift.added)} added, {len(drift.removed)} removed, {len(drift.changed)} changed",
        markup=False,
    )
    return 0
