"""``orchestrator bump STEP --version V [--url URL ...] [--sha256 H ...]``, ``bump --list``,
``bump --drop STEP``: local overrides of one package's distfiles, ahead of upstream.

The override is recorded as data in ``steps/overrides/<package>.json`` and steps/ is regenerated
with it; generated files are never edited. Order of work, so that a failure changes nothing:
1. resolve STEP and the new distfiles (derived from the upstream URLs, or ``--url``);
2. dry-run the generation with the override (placeholder hashes): refuse what would not generate;
3. prefetch every new file (``nix-prefetch`` when installed, else ``nix-prefetch-url``, else
   ``nix store prefetch-file``), checking ``--sha256`` when given;
4. render steps/ with the real override in memory, then swap it in atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.commands import options
from orchestrator.errors import OrchestratorError
from orchestrator.generate.write import compare, read_existing, unified
from orchestrator.maintain.bump import (
    check_generates,
    override_diff,
    placeholder_hashes,
    plan_bump,
    prefetch,
    prefetch_tool,
    render_with,
    resolve_package,
)
from orchestrator.maintain.transaction import Transaction
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import (
    chosen_tree,
    committed_tree,
    locate_tree,
)
from orchestrator.upstream.overrides import (
    OVERRIDES_DIR,
    load_overrides,
)
from orchestrator.upstream.tree import SourceTree

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bump",
        help="override one package's distfiles ahead of upstream (steps/overrides/)",
        description="Record a local override of one package's distfiles and regenerate steps/.",
    )
    p.add_argument(
        "step", metavar="STEP", nargs="?", help="package (gcc-15.2.0) or step (gcc-15.2.0-pass1)"
    )
    p.add_argument("--version", dest="new_version", metavar="V", help="the version to build")
    p.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="URL",
        help="new distfile URL (repeat; default: substitute V into the upstream URLs)",
    )
    p.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="HASH",
        help="expected hash of each new file, in order (any form Nix prints); a mismatch is an error",
    )
    p.add_argument("--list", action="store_true", help="show the active overrides")
    p.add_argument("--drop", metavar="STEP", help="remove the override of STEP and regenerate")
    options.json_output(p, "with --list: machine-readable")
    p.add_argument(
        "--dry-run", action="store_true", help="prefetch and show the diff, write nothing"
    )
    options.steps_dir(p, help="the generated steps/ directory (default: the repository's)")
    options.live_bootstrap(p, default="the snapshot committed in steps/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    steps_dir: Path = args.steps
    if args.list:
        return _list(steps_dir, as_json=args.json)
    if args.drop:
        return _drop(args, steps_dir)
    if not args.step or not args.new_version:
        raise OrchestratorError(
            "bump needs STEP and --version V (or --list, or --drop STEP)",
            hint="e.g. python -m orchestrator bump gcc-15.2.0 --version 15.3.0",
        )
    return _bump(args, steps_dir)


# -- the tree and chain ----------------------------------------------------------------------


def _tree(args: argparse.Namespace, steps_dir: Path) -> SourceTree:
    if chosen_tree(args.live_bootstrap):
        return locate_tree(
            chosen_tree(args.live_bootstrap), log=lambda m: err.print(m, markup=False)
        )
    return committed_tree(steps_dir)


# -- bump ------------------------------------------------------------------------------------


def _bump(args: argparse.Namespace, steps_dir: Path) -> int:
    tree = _tree(args, steps_dir)
    base = load_chain(tree)
    package, note = resolve_package(base, args.step)
    if note:
        err.print(note, markup=False)
    plan = plan_bump(base, package, args.new_version, args.url, args.sha256)
    others = [o for o in load_overrides(steps_dir) if o.package != package]
    tool = prefetch_tool()
    # 2. would generation work with it? (nothing fetched, nothing written)
    check_generates(tree, steps_dir, others, plan.override(placeholder_hashes(base, plan), tool))
    # 3. prefetch
    if tool != "nix-prefetch":
        err.print(f"nix-prefetch is not installed: prefetching with {tool}", markup=False)
    hashes = []
    for i, (name, urls) in enumerate(plan.new):
        expected = args.sha256[i] if args.sha256 else None
        h = prefetch(urls[0], name, expected, tool)
        err.print(f"prefetched {name} with {tool}: sha256 {h}", markup=False)
        hashes.append(h)
    ov = plan.override(hashes, tool)
    # 4. render with it and swap in
    files = render_with(tree, steps_dir, sorted([*others, ov], key=lambda o: o.package))
    old = read_existing(steps_dir)
    drift = compare(files, old, [])
    for p in drift.added + drift.removed + drift.changed:
        print(unified(files, old, p), end="")
    print(override_diff(ov, steps_dir), end="")
    if args.dry_run:
        err.print("dry run: nothing written", markup=False)
        return 0
    txn = Transaction()
    txn.replace_steps(steps_dir, files, {f"{package}.json": ov.to_json()})
    txn.commit()
    err.print(
        f"wrote steps/{OVERRIDES_DIR}/{package}.json ({package}: {plan.upstream_version} -> "
        f"{args.new_version}) and regenerated "
        f"{len(drift.changed) + len(drift.added) + len(drift.removed)} file(s) of steps/",
        markup=False,
    )
    return 0


def _drop(args: argparse.Namespace, steps_dir: Path) -> int:
    overrides = load_overrides(steps_dir)
    name = args.drop
    match = [o for o in overrides if o.package == name]
    if not match:
        # a step name of an overridden package
        match = [o for o in overrides if name.startswith(o.package + "-pass")]
    if not match:
        raise OrchestratorError(
            f"no override for {name!r}",
            hint="active: " + (", ".join(o.package for o in overrides) or "none"),
        )
    ov = match[0]
    tree = _tree(args, steps_dir)
    files = render_with(tree, steps_dir, [o for o in overrides if o is not ov])
    old = read_existing(steps_dir)
    drift = compare(files, old, [])
    for p in drift.added + drift.removed + drift.changed:
        print(unified(files, old, p), end="")
    if args.dry_run:
        err.print("dry run: nothing written", markup=False)
        return 0
    txn = Transaction()
    txn.replace_steps(steps_dir, files, {f"{ov.package}.json": None})
    txn.commit()
    err.print(
        f"dropped steps/{OVERRIDES_DIR}/{ov.package}.json; {ov.package} follows upstream again",
        markup=False,
    )
    return 0


def _list(steps_dir: Path, *, as_json: bool) -> int:
    overrides = load_overrides(steps_dir)
    if as_json:
        print(json.dumps([o.model_dump() for o in overrides], indent=1))
        return 0
    if not overrides:
        err.print("no active overrides", markup=False)
        return 0
    table = Table(title=f"{len(overrides)} active override(s) in steps/{OVERRIDES_DIR}/")
    for col in ("package", "upstream", "override", "replaces", "new files", "prefetched with"):
        table.add_column(col, overflow="fold")
    for o in overrides:
        table.add_row(
            o.package,
            o.upstream_version,
            o.version,
            "\n".join(o.replaces),
            "\n".join(f"{d.filename} {d.sha256[:12]}…" for d in o.distfiles),
            o.prefetched_with,
        )
    out.print(table)
    return 0
