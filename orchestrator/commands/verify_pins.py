"""``orchestrator verify --against-live-bootstrap``: its options and its table (the engine is
``verify/pins.py``)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from orchestrator.build.targets import DEFAULT_TARGET, default_flake
from orchestrator.commands import options
from orchestrator.display import text
from orchestrator.errors import OrchestratorError
from orchestrator.tables import Rows, columns, emit
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import read_tree
from orchestrator.verify.pins import Report, step_outputs, verify

STYLE = {
    "ok": "green",
    "mismatch": "bold red",
    "missing": "bold red",
    "not-built": "yellow",
    "unpinned": "yellow",
    "no-pins": "dim",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``--against-live-bootstrap`` that ``verify`` does not have already (it has
    ``--json`` and ``--strict``)."""
    parser.add_argument(
        "--flake", metavar="REF", help="flake with the step outputs (default: this repository)"
    )
    options.live_bootstrap(
        parser, default="the pinned input (pins from the committed steps/upstream.json)"
    )


def verify_against_live_bootstrap(args: argparse.Namespace) -> int:

    targets = list(
        getattr(args, "targets", None) or ([args.target] if getattr(args, "target", None) else [])
    )
    if len(targets) > 1:
        raise OrchestratorError("--against-live-bootstrap takes at most one TARGET")
    target = targets[0] if targets else DEFAULT_TARGET
    tree = read_tree(getattr(args, "live_bootstrap", None))
    chain = load_chain(tree)
    attrs = [s.step.attr_name for s in chain.steps]
    if target not in attrs and target != DEFAULT_TARGET:
        raise OrchestratorError(
            f"{target} is not a step of the chain", hint=f"name a step or {DEFAULT_TARGET}"
        )
    wanted = attrs[: attrs.index(target) + 1] if target in attrs else attrs
    outputs = step_outputs(getattr(args, "flake", None) or default_flake(), wanted)
    report = verify(chain, target, outputs)
    if getattr(args, "json", False):
        sys.stdout.write(report.model_dump_json(indent=1) + "\n")
    else:
        print_report(report)
    return report.exit_code(strict=getattr(args, "strict", False))


def print_report(report: Report) -> None:
    console = Console(highlight=False)
    table = Rows(
        f"{report.target} against live-bootstrap's pins",
        columns("#", "step", "file", "expected", "actual", "status", right=("#",)),
    )
    cell_styles = {}
    for c in report.checks:
        cell_styles[(len(table.rows), 5)] = STYLE[c.status]
        table.add(c.index, c.step, c.file or "", c.expected or "", c.actual or "", c.status)
    emit(table, console=console, cell_styles=cell_styles)
    for c in report.checks:
        if c.status in ("mismatch", "missing"):
            console.print(
                text(
                    (c.status, STYLE[c.status]),
                    f": {c.step} {c.file or ''} (pinned in {c.pinned_in or '?'})",
                ),
                soft_wrap=True,
            )
            console.print(f"  expected {c.expected}", soft_wrap=True)
            console.print(
                f"  actual   {c.actual or '(no such file in the step output)'}", soft_wrap=True
            )
    console.print(", ".join(f"{v} {k}" for k, v in report.counts.items()))
