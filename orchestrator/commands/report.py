"""``orchestrator report --html DIR [RESULTS_FILE...]``: the chain page.

Every step of ``plan`` (and the stdenv bridge's), in order, from the seed to the ISO, coloured by
what the results files given say about it, with a detail per step and the seed audit; each
``verify`` results file also gets its own page. Reads only files (and, with ``--eval``, the
local store through one ``nix eval`` of the step outputs); nothing is built or fetched.

(The maintainers' change reports are ``update`` and ``diff``; this command is the user's page.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from orchestrator.bridge.members import DATA_FILE
from orchestrator.commands import options
from orchestrator.commands.plan import _bridge_rows
from orchestrator.errors import OrchestratorError
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import (
    chosen_tree,
    committed_tree,
    read_tree,
)
from orchestrator.upstream.overrides import apply_overrides, load_overrides

DDC_CHECK = "ddc-stage0"  # the flake check of diverse double-compiling at stage0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="the chain page: every step from the seed to the ISO with what was checked",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument(
        "--html", required=True, type=Path, metavar="DIR", help="write DIR/index.html (and pages)"
    )
    p.add_argument(
        "results",
        nargs="*",
        type=Path,
        metavar="RESULTS_FILE",
        help="verify's results file (JSON Lines), `verify --against-live-bootstrap --json` "
        "output, the DDC check's result (JSON)",
    )
    options.live_bootstrap(p)
    options.profile(p, help="bootstrap.cfg the chain is resolved under")
    p.add_argument(
        "--eval",
        action="store_true",
        help="also evaluate the flake's stage0 and step outputs (one nix eval) and mark those "
        "valid in the local store as built",
    )
    options.steps_dir(p)
    p.set_defaults(func=run)


def ddc_check_output(flake: str) -> str | None:
    """The output of the flake's DDC check (``checks.<system>.ddc-stage0``) when it is valid in
    the local store; ``None`` when the check does not exist or was not built here."""
    from orchestrator import nixcli
    from orchestrator.errors import NixError
    from orchestrator.nixstr import flake_installable
    from orchestrator.verify.pins import current_system

    apply = f"cs: if cs ? {DDC_CHECK} then cs.{DDC_CHECK}.outPath else null"
    try:
        path = nixcli.nix_json(
            ["eval", flake_installable(flake, ["checks", current_system()]), "--apply", apply]
        )
    except NixError:
        return None  # no checks for this system in the flake
    if not isinstance(path, str) or path in nixcli.invalid_paths([path]):
        return None
    return path


def run(args: argparse.Namespace) -> int:
    from orchestrator.verify.chain_page import write_chain_report

    chosen = chosen_tree(args.live_bootstrap)
    tree = read_tree(chosen) if chosen else committed_tree(args.steps)
    chain = apply_overrides(load_chain(tree, args.profile), load_overrides(args.steps))
    if not DATA_FILE.is_file():
        raise OrchestratorError("no stdenv bridge data", file=str(DATA_FILE))
    bridge = _bridge_rows(chain, len(chain.steps))
    outputs: dict[str, str | None] | None = None
    results = list(args.results)
    if args.eval:
        from orchestrator.build.targets import default_flake
        from orchestrator.verify.pins import step_outputs

        # stage0 and the chain's steps; the bridge's outputs evaluate only with Nix >= 2.18
        outputs = step_outputs(
            default_flake(), ["stage0", *(s.step.attr_name for s in chain.steps)]
        )
        ddc = ddc_check_output(default_flake())
        if ddc is not None:
            results.append(Path(ddc))
    page = write_chain_report(args.html, chain, bridge, tree, results, outputs)
    Console(stderr=True, highlight=False).print(f"chain page: {page}", markup=False)
    return 0
