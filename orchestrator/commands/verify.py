"""``orchestrator verify``: prove local outputs equal what Hydra published, or a local rebuild.

Exit codes: 0 nothing differs and nothing failed; 1 some path differs; 2 a path is untrusted or
could not be checked (error), or a usage/setup error. ``--strict`` also gives 2 when a path was
inconclusive (not in the cache, not built locally).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.display import lines, text
from orchestrator.errors import OrchestratorError
from orchestrator.formats.binary_cache import DEFAULT_CACHE, BinaryCache
from orchestrator.formats.narinfo import DEFAULT_TRUSTED_KEY, parse_public_key
from orchestrator.verify import pins
from orchestrator.verify.cache import (
    LocalPath,
    PathResult,
    Report,
    ResultsFile,
    Status,
    Summary,
    Verifier,
    now,
    plan_hydra,
    query_local,
    rebuild_target,
    report_schema,
    verify_against_cache,
)
from orchestrator.verify.hydra import DEFAULT_HYDRA, HydraClient
from orchestrator.verify.pairs import Pair, load_pairs, parse_pair

DEFAULT_RESULTS = "verify-results.jsonl"
_SHOW_ALL_UP_TO = 50

STYLE = {
    Status.reproducible: "green",
    Status.equal_modulo_store_paths: "green",
    Status.differs: "bold red",
    Status.not_in_cache: "yellow",
    Status.not_built_locally: "yellow",
    Status.untrusted: "bold magenta",
    Status.error: "bold red",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="compare local builds with Hydra's signed outputs, or with a local rebuild",
        description=(
            "Compare local store paths with the NarHash a binary cache signed "
            "(--against-hydra), across bootstraps (--pair), or with a second local build "
            "(--rebuild). Exit 0: nothing differs; 1: something differs; 2: untrusted or error."
        ),
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--against-hydra", action="store_true", help="compare with the cache")
    mode.add_argument("--rebuild", action="store_true", help="build again locally and compare")
    mode.add_argument("--schema", action="store_true", help="print the --json schema and exit")
    mode.add_argument(
        "--against-live-bootstrap",
        action="store_true",
        help="compare every step's outputs with live-bootstrap's own pinned hashes",
    )
    p.add_argument("targets", nargs="*", metavar="TARGET", help="installable or store path")
    p.add_argument("--closure", action="store_true", help="also check the runtime closure")
    p.add_argument("--cache", default=DEFAULT_CACHE, help=f"binary cache (default {DEFAULT_CACHE})")
    p.add_argument("--hydra", default=DEFAULT_HYDRA, help=f"Hydra (default {DEFAULT_HYDRA})")
    p.add_argument("--job", metavar="PROJECT/JOBSET/JOB", help="compare with Hydra's latest build")
    p.add_argument(
        "--trusted-key",
        action="append",
        metavar="NAME:KEY",
        help=f"trusted public key, repeatable (default {DEFAULT_TRUSTED_KEY})",
    )
    p.add_argument("--jobs", type=int, default=16, metavar="N", help="parallel requests (16)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per request (20)")
    p.add_argument("--retries", type=int, default=3, help="retries of a failed request (3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--diff", action="store_true", help="show what differs in differing paths")
    p.add_argument(
        "--diff-tool",
        choices=["auto", "builtin", "diffoscope"],
        default="auto",
        help="auto: diffoscope when installed, else the built-in report",
    )
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="OURS=THEIRS",
        help="compare two bootstraps' builds modulo store paths (repeatable)",
    )
    p.add_argument("--pairs", metavar="FILE.json", help="pairs from a JSON file")
    p.add_argument(
        "--rehash",
        action="store_true",
        help="hash local paths from disk instead of trusting the store database",
    )
    p.add_argument(
        "--results",
        default=DEFAULT_RESULTS,
        metavar="FILE",
        help=f"JSON Lines file written as results come in ({DEFAULT_RESULTS})",
    )
    p.add_argument("--no-results", action="store_true", help="do not write the results file")
    p.add_argument("--strict", action="store_true", help="exit 2 when any path is inconclusive")
    p.add_argument("--verbose", "-v", action="store_true", help="list every path in the table")
    p.add_argument("--sandbox", choices=["true", "false"], help="nix sandbox for --rebuild")
    pins.add_arguments(p)
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    """A plain message on stderr (it quotes targets and URLs: shown literally)."""
    Console(stderr=True, highlight=False).print(lines(msg), soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(report_schema(), indent=2, sort_keys=True))
        return 0
    if args.against_live_bootstrap:
        return pins.verify_against_live_bootstrap(args)
    if not (args.against_hydra or args.rebuild):
        raise OrchestratorError(
            "say what to compare with: --against-hydra or --rebuild",
            hint="orchestrator verify --against-hydra TARGET... (see orchestrator verify --help)",
        )
    if args.jobs < 1:
        raise OrchestratorError("--jobs must be at least 1")
    if args.rebuild:
        return _run_rebuild(args)
    return _run_against_hydra(args)


def _results_file(args: argparse.Namespace) -> ResultsFile:
    return ResultsFile(None if args.no_results else args.results)


def _run_rebuild(args: argparse.Namespace) -> int:
    if not args.targets:
        raise OrchestratorError("--rebuild needs at least one TARGET")
    if args.pair or args.pairs or args.job:
        raise OrchestratorError("--pair, --pairs and --job go with --against-hydra, not --rebuild")
    report = Report(mode="rebuild", started=now())
    sink = _results_file(args)
    sink.start(report)
    sandbox = None if args.sandbox is None else args.sandbox == "true"
    try:
        for target in args.targets:
            _log(f"rebuilding {target}")
            for r in rebuild_target(target, keep_failed=args.diff, sandbox=sandbox):
                report.results.append(r)
                sink.result(r)
    finally:
        sink.close()
    return _finish(args, report, sink)


def _run_against_hydra(args: argparse.Namespace) -> int:
    keys = [parse_public_key(k) for k in (args.trusted_key or [DEFAULT_TRUSTED_KEY])]
    pairs: list[Pair] = [parse_pair(p) for p in args.pair]
    if args.pairs:
        pairs += load_pairs(args.pairs)
    if not (args.targets or pairs or args.job):
        raise OrchestratorError("nothing to verify: name a TARGET, a --pair or a --job")

    report = Report(
        mode="against-hydra",
        cache=args.cache,
        hydra=args.hydra if args.job else None,
        job=args.job,
        trusted_keys=[str(k) for k in keys],
        started=now(),
    )
    locals_ = query_local(args.targets, closure=args.closure) if args.targets else []
    products: list[tuple[str, str, str, str]] = []
    unmatched: list[str] = []
    if args.job:
        with HydraClient(args.hydra, timeout=args.timeout, retries=args.retries) as hydra:
            build = hydra.latest(args.job)
        report.hydra_build = build.id
        _log(f"Hydra {args.job}: latest successful build {build.id}")
        if not locals_:
            outs = [o.path for o in build.buildoutputs.values()]
            locals_ = query_local(outs, closure=args.closure)
        plan = plan_hydra(build, locals_)
        pairs += plan.pairs
        products = plan.products
        unmatched = plan.unmatched

    pair_locals: dict[str, LocalPath] = {}
    if pairs:
        known = {lp.path for lp in locals_}
        wanted = [p for pair in pairs for p in (pair.ours, pair.theirs) if p not in known]
        if wanted:
            pair_locals = {lp.path: lp for lp in query_local(wanted)}

    sink = _results_file(args)
    sink.start(report)
    for hydra_out in unmatched:
        r = PathResult(
            path=hydra_out,
            status=Status.not_built_locally,
            reason=f"no local output pairs with Hydra's output {hydra_out}",
            hint="name the local build of this job as TARGET",
        )
        report.results.append(r)
        sink.result(r)
    n = len(locals_) + len(pairs) + len(products)
    _log(f"checking {n} item(s) against {args.cache}")
    try:
        results = asyncio.run(_check(args, keys, locals_, pairs, pair_locals, products, sink))
    finally:
        sink.close()
    report.results.extend(results)
    return _finish(args, report, sink)


async def _check(
    args: argparse.Namespace,
    keys: list[Any],
    locals_: list[LocalPath],
    pairs: list[Pair],
    pair_locals: dict[str, LocalPath],
    products: list[tuple[str, str, str, str]],
    sink: ResultsFile,
) -> list[PathResult]:
    async with BinaryCache(
        args.cache, concurrency=args.jobs, timeout=args.timeout, retries=args.retries
    ) as cache:
        verifier = Verifier(
            cache,
            keys,
            jobs=args.jobs,
            rehash=args.rehash,
            diff=args.diff,
            diff_tool=args.diff_tool,
            on_result=sink.result,
        )
        return await verify_against_cache(
            verifier, locals_, pairs, pair_locals, products, hydra_url=args.hydra
        )


def _finish(args: argparse.Namespace, report: Report, sink: ResultsFile) -> int:
    report.summary = Summary.of(report.results, strict=args.strict)
    report.finished = now()
    report.complete = True
    sink.end(report)
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        _log(report.summary.line())
    else:
        print_table(report, verbose=args.verbose)
    return report.summary.exit_code


def print_table(report: Report, *, verbose: bool = False) -> None:
    console = Console(highlight=False)
    rows = report.results
    hidden = 0
    if not verbose and len(rows) > _SHOW_ALL_UP_TO:
        shown = [r for r in rows if r.status not in (Status.reproducible,)]
        hidden = len(rows) - len(shown)
        rows = shown
    if rows:
        table = Table(show_lines=False)
        table.add_column("status", no_wrap=True)
        table.add_column("path", overflow="fold")
        table.add_column("detail", overflow="fold")
        for r in rows:
            detail = r.reason or ""
            if r.theirs:
                detail = f"vs {r.theirs}\n{detail}"
            if r.hint and r.status not in (Status.reproducible, Status.equal_modulo_store_paths):
                detail += f"\nhint: {r.hint}"
            if r.diff is not None:
                detail += "\n" + _diff_text(r)
            style = STYLE[r.status]
            table.add_row(text((r.status.value, style)), text(r.path), lines(detail))
        console.print(table)
    if hidden:
        console.print(
            f"({hidden} reproducible paths not listed; --verbose lists them)", markup=False
        )
    console.print(report.summary.line(), markup=False)


def _diff_text(r: PathResult) -> str:
    d = r.diff
    assert d is not None
    if d.error:
        return f"diff failed: {d.error}"
    lines = []
    for f in d.files[:20]:
        text = f"{f.change}: {f.path or '.'}"
        if f.change == "content":
            text += f" ({f.ours_size} vs {f.theirs_size} bytes, first difference at {f.first_difference})"
        elif f.detail:
            text += f" ({f.detail})"
        lines.append(text)
    if len(d.files) > 20 or d.truncated:
        lines.append("...")
    if d.tool == "diffoscope" and d.output:
        lines.append("diffoscope report in --json output")
    return "\n".join(lines) or "no file-level difference found"
