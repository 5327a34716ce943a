"""``orchestrator distfiles seed DIR``: the command (the engine is ``build/distfiles.py``), and the
selection options seed and mirror share."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from orchestrator.build.distfiles import DistfileSpec, chain_distfiles, load_list, seed
from orchestrator.commands import options
from orchestrator.errors import OrchestratorError
from orchestrator.tables import Rows, columns, emit

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(dsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = dsub.add_parser(
        "seed",
        help="add a directory of distfiles to the Nix store at the paths the build expects",
        description="Verify each distfile's sha256 and add it with nix-store --add-fixed, so that "
        "the build needs no network. Exit 1 when a file has the wrong hash, or when distfiles "
        "are missing from the store and DIR added none of them.",
    )
    p.add_argument("dir", metavar="DIR", help="live-bootstrap's distfiles/ or a mirror.sh mirror")
    add_selection_arguments(p)
    p.set_defaults(func=run_seed)


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """Which distfiles a command works on (shared by seed and mirror), and --json."""
    p.add_argument("--until", metavar="STEP", help="only the distfiles of the chain up to STEP")
    p.add_argument(
        "--list",
        metavar="FILE",
        help="distfiles from this JSON (as `distfiles list --json` prints)",
    )
    options.live_bootstrap(p)
    options.json_output(p)


def specs_from_args(args: argparse.Namespace) -> list[DistfileSpec]:
    if getattr(args, "list", None):
        return load_list(args.list)
    return chain_distfiles(args.live_bootstrap, args.until)


def run_seed(args: argparse.Namespace) -> int:
    results = seed(Path(args.dir), specs_from_args(args))
    counts = {
        k: sum(1 for r in results if r.status == k) for k in ("present", "missing", "mismatched")
    }
    added = sum(1 for r in results if r.detail == "added")
    missing = [r.filename for r in results if r.status == "missing"]
    error = None
    if missing and not added and not counts["mismatched"]:
        # a wrong DIR (or the wrong list) must not look like success
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        error = OrchestratorError(
            f"nothing added from {args.dir}: {len(missing)} distfile(s) missing from the store "
            f"and from that directory: {', '.join(missing[:10])}{more}",
            hint="DIR must hold the files under their distfile names (live-bootstrap's "
            "distfiles/, a mirror.sh mirror); `distfiles list` names them",
        )
        error.exit_code = 1
    if args.json:
        print(
            json.dumps(
                {
                    "counts": counts,
                    "added": added,
                    "results": [r.model_dump() for r in results],
                    "error": error.message if error else None,
                    "hint": error.hint if error else None,
                },
                indent=1,
            )
        )
    else:
        table = Rows(f"distfiles seeded from {args.dir}", columns("status", "file", "detail"))
        style = {"present": "green", "missing": "yellow", "mismatched": "bold red"}
        order = {"mismatched": 0, "missing": 1, "present": 2}
        cell_styles = {}
        for r in sorted(results, key=lambda r: order[r.status]):
            detail = (
                r.detail
                if r.status != "mismatched"
                else f"{r.detail}; expected {r.sha256}, got {r.actual_sha256}"
            )
            if r.status == "present":
                detail += f": {r.store_path}"
            cell_styles[(len(table.rows), 0)] = style[r.status]
            table.add(r.status, r.filename, detail)
        emit(table, console=out, cell_styles=cell_styles)
    err.print(
        f"{counts['present']} present ({added} added), {counts['missing']} missing, {counts['mismatched']} mismatched",
        soft_wrap=True,
    )
    if error is not None:
        error.json_printed = bool(args.json)  # type: ignore[attr-defined]  # the report has it
        raise error
    return 1 if counts["mismatched"] else 0
