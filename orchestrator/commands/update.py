"""``orchestrator update [--rev REV | --to-path CHECKOUT] [--dry-run] [--json | --format markdown]``.

Moves the pinned live-bootstrap input (flake.nix's URL, flake.lock's node, with submodules) to a
new revision, regenerates steps/ from it, and prints the change report against what steps/ was
generated from (the committed steps/upstream.json).

- ``--to-path CHECKOUT``: a local git checkout (submodules checked out). The lock is written as
  Nix's own git fetcher would write it for ``git+https://...?submodules=1&rev=REV``: the rev from
  git, ``narHash`` computed by Nix (``nix hash path``) over the checkout of that rev with its
  submodules and without ``.git``, ``lastModified`` (commit time) and ``revCount`` from git; the
  tree is added to the store under the name ``source``, so the new pin resolves offline. With
  ``--dry-run`` CHECKOUT may also be a data-only snapshot (report only).
- ``--rev REV`` (or neither option: the newest commit of the locked ref): Nix fetches, which
  needs network; offline it fails before anything is changed.

Nothing is written unless everything worked: the new tree is parsed (an unknown manifest syntax
is an error naming the line), steps/ is rendered in memory (with the overrides in
steps/overrides/, refused when one is stale), and flake.nix, flake.lock and steps/ are swapped
in together (``Transaction``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

from orchestrator.commands.diff import add_report_options, emit, report_format
from orchestrator.maintain.update import FlakeFiles, apply, drift_of, new_pin, prepare
from orchestrator.upstream.locate import REPO_ROOT, committed_tree

err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "update",
        help="move the pinned live-bootstrap input to a new revision and regenerate steps/",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--rev", metavar="REV", help="40-digit revision to pin (Nix fetches it: needs network)"
    )
    src.add_argument(
        "--to-path",
        metavar="CHECKOUT",
        type=Path,
        help="pin the HEAD of this local git checkout (with submodules)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the change report, write nothing")
    p.add_argument(
        "--flake",
        type=Path,
        default=REPO_ROOT,
        metavar="DIR",
        help="the flake whose flake.nix, flake.lock and steps/ to update (default: this repository)",
    )
    add_report_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    steps_dir: Path = args.flake / "steps"
    flake = FlakeFiles(args.flake)
    old_tree = committed_tree(steps_dir)
    with tempfile.TemporaryDirectory(prefix="orchestrator-update-") as tmp:
        pin = new_pin(flake, args.rev, args.to_path, Path(tmp), say, dry_run=args.dry_run)
        files, report = prepare(
            old_tree, pin.tree, steps_dir, args.profile, say, dry_run=args.dry_run
        )
        emit(report, report_format(args))
        if files is None:
            say("dry run, nothing written (steps/ cannot be generated from this tree, see above)")
            return 0
        drift = drift_of(files, steps_dir)
        summary = (
            f"steps/: {len(drift.added)} added, {len(drift.removed)} removed, "
            f"{len(drift.changed)} changed"
        )
        if args.dry_run:
            say(f"dry run, nothing written ({summary})")
            return 0
        assert pin.locked is not None
        if pin.locked.get("rev") == flake.rev and drift.clean:
            say(f"live-bootstrap is already pinned at {flake.rev} and steps/ is up to date")
            return 0
        apply(flake, steps_dir, files, pin, say)
    say(f"pinned live-bootstrap {pin.locked['rev']} (was {flake.rev}); {summary}")
    return 0


def say(message: str) -> None:
    err.print(message, markup=False)
