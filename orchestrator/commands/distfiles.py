"""``orchestrator distfiles list [--json]`` (and, registered by other modules, seed/mirror)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from orchestrator.commands import distfiles_mirror, distfiles_seed, options
from orchestrator.tables import Rows, columns, emit
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import read_tree


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("distfiles", help="source tarballs the chain needs")
    dsub = p.add_subparsers(dest="distfiles_command", required=True, metavar="ACTION")
    lp = dsub.add_parser("list", help="every distinct distfile, with all its URLs")
    options.live_bootstrap(lp)
    options.json_output(lp, "machine-readable list on stdout")
    lp.set_defaults(func=run_list)
    for extra in EXTRA_ACTIONS:
        extra(dsub)


# Other modules add actions (seed, mirror) here: callables taking the subparsers object.
EXTRA_ACTIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    distfiles_seed.register,
    distfiles_mirror.register,
]


def run_list(args: argparse.Namespace) -> int:
    chain = load_chain(read_tree(args.live_bootstrap))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "filename": d.filename,
                        "sha256": d.sha256,
                        "type": d.kind,
                        "urls": d.urls,
                        "git": {"repo": d.git_repo, "ref": d.git_ref} if d.git_repo else None,
                        "first_step": d.first_step,
                        "steps": d.steps,
                        "pre_network": d.pre_network,
                    }
                    for d in chain.distfiles
                ],
                indent=1,
            )
        )
        return 0
    # whole cells (full sha256, every URL, space-separated): see orchestrator.tables
    table = Rows(
        f"{len(chain.distfiles)} distfiles",
        columns("filename", "type", "sha256", "first step", "pre-network", "urls"),
    )
    for d in chain.distfiles:
        table.add(
            d.filename,
            d.kind,
            d.sha256,
            d.first_step,
            "yes" if d.pre_network else "",
            " ".join(d.urls) or "(git only: mirror or seeded store)",
        )
    emit(table)
    return 0
