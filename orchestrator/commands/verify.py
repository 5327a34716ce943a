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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from orchestrator.commands import verify_pins
from orchestrator.commands.verify_table import print_table
from orchestrator.display import lines
from orchestrator.errors import OrchestratorError
from orchestrator.formats.binary_cache import DEFAULT_CACHE, BinaryCache
from orchestrator.formats.narinfo import DEFAULT_TRUSTED_KEY, parse_public_key
from orchestrator.formats.url_credentials import redact
from orchestrator.verify.consensus import combine
from orchestrator.verify.engine import Verifier, verify_against_cache
from orchestrator.verify.hydra import DEFAULT_HYDRA, HydraClient
from orchestrator.verify.hydra_plan import HydraProduct, hydra_outputs, plan_hydra
from orchestrator.verify.local_store import LocalPath, query_local, query_store_paths
from orchestrator.verify.pairs import Pair, load_pairs, parse_pair
from orchestrator.verify.rebuild import rebuild_target
from orchestrator.verify.report import (
    SCHEMA_VERSION_CACHES,
    PathResult,
    Report,
    Status,
    Summary,
    now,
    report_schema,
)
from orchestrator.verify.results_file import ResultsFile, default_results_path


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
    _cache_options(p)
    _output_options(p)
    _pair_options(p)
    p.add_argument(
        "--rehash",
        action="store_true",
        help="hash local paths from disk instead of trusting the store database",
    )
    p.add_argument(
        "--results",
        metavar="FILE",
        help="JSON Lines file written as results come in "
        "(default $XDG_CACHE_HOME/orchestrator/verify-results.jsonl)",
    )
    p.add_argument("--no-results", action="store_true", help="do not write the results file")
    p.add_argument("--strict", action="store_true", help="exit 2 when any path is inconclusive")
    p.add_argument("--verbose", "-v", action="store_true", help="list every path in the table")
    p.add_argument("--sandbox", choices=["true", "false"], help="nix sandbox for --rebuild")
    verify_pins.add_arguments(p)
    p.set_defaults(func=run)


def _cache_options(p: argparse.ArgumentParser) -> None:
    """Where the signed answers come from, and how hard to ask."""
    p.add_argument(
        "--cache",
        action="append",
        metavar="URL",
        help=f"binary cache (default {DEFAULT_CACHE}); repeatable: every path is checked against "
        "each cache, with a verdict per cache and a consensus (schema version 2)",
    )
    p.add_argument("--hydra", default=DEFAULT_HYDRA, help=f"Hydra (default {DEFAULT_HYDRA})")
    p.add_argument("--job", metavar="PROJECT/JOBSET/JOB", help="compare with Hydra's latest build")
    p.add_argument(
        "--trusted-key",
        action="append",
        metavar="NAME:KEY",
        help=f"trusted public key, repeatable (default {DEFAULT_TRUSTED_KEY})",
    )
    # 32: a cache 50 ms away answers 1,500 narinfos in under 5 s (bench/bench_verify.py
    # --latency 50; with 16 it took 6-8 s, latency-bound); near Nix's own http-connections (25)
    p.add_argument("--jobs", type=int, default=32, metavar="N", help="parallel requests (32)")
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds per request (20); a cache that answers nothing for twice this long, or "
        "fails 2 x --jobs attempts in a row, is given up on",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a failed request, with backoff and Retry-After (3)",
    )
    p.add_argument(
        "--http-client",
        choices=["builtin", "httpx"],
        default="builtin",
        help="narinfo fetches: the built-in keep-alive client (default, ~10x less CPU per "
        "request) or httpx",
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    """What the report looks like, and what is shown of a difference."""
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument(
        "--html",
        metavar="DIR",
        type=Path,
        help="also write a self-contained static report page, DIR/index.html",
    )
    p.add_argument("--diff", action="store_true", help="show what differs in differing paths")
    p.add_argument(
        "--diff-tool",
        choices=["auto", "builtin", "diffoscope"],
        default="auto",
        help="auto: diffoscope when installed, else the built-in report",
    )


def _pair_options(p: argparse.ArgumentParser) -> None:
    """Comparing two bootstraps' builds modulo store paths."""
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="OURS=THEIRS",
        help="compare two bootstraps' builds modulo store paths (repeatable)",
    )
    p.add_argument("--pairs", metavar="FILE.json", help="pairs from a JSON file")
    p.add_argument(
        "--pair-with-hydra",
        action="store_true",
        help="pair TARGET's whole closure with Hydra's build of the same attribute "
        "(the bridge's outputs; see docs/bridge-nixpkgs.md)",
    )
    p.add_argument(
        "--theirs", metavar="PATH", help="with --pair-with-hydra: Hydra's partner of TARGET"
    )


def _log(msg: str) -> None:
    """A plain message on stderr (it quotes targets and URLs: shown literally)."""
    Console(stderr=True, highlight=False).print(lines(msg), soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(report_schema(), indent=2, sort_keys=True))
        return 0
    if args.against_live_bootstrap:
        return verify_pins.verify_against_live_bootstrap(args)
    if not (args.against_hydra or args.rebuild):
        raise OrchestratorError(
            "say what to compare with: --against-hydra, --against-live-bootstrap or --rebuild "
            "(--schema prints the --json schema)",
            hint="orchestrator verify --against-hydra TARGET... (see orchestrator verify --help)",
        )
    if args.jobs < 1:
        raise OrchestratorError("--jobs must be at least 1")
    if args.rebuild:
        return _run_rebuild(args)
    return _run_against_hydra(args)


def _results_file(args: argparse.Namespace) -> ResultsFile:
    if args.no_results:
        return ResultsFile(None)
    path = args.results or default_results_path()
    _log(f"results: {escape(str(path))}")
    return ResultsFile(path)


def _run_rebuild(args: argparse.Namespace) -> int:
    if not args.targets:
        raise OrchestratorError("--rebuild needs at least one TARGET")
    if args.pair or args.pairs or args.job or args.pair_with_hydra:
        raise OrchestratorError(
            "--pair, --pairs, --pair-with-hydra and --job go with --against-hydra, not --rebuild"
        )
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
    if args.theirs and not args.pair_with_hydra:
        raise OrchestratorError("--theirs goes with --pair-with-hydra")
    keys = [parse_public_key(k) for k in (args.trusted_key or [DEFAULT_TRUSTED_KEY])]
    pairs: list[Pair] = [parse_pair(p) for p in args.pair]
    if args.pairs:
        pairs += load_pairs(args.pairs)
    if not (args.targets or pairs or args.job):
        raise OrchestratorError("nothing to verify: name a TARGET, a --pair or a --job")
    caches: list[str] = args.cache or [DEFAULT_CACHE]
    if len(set(caches)) != len(caches):
        raise OrchestratorError("a --cache is given twice", hint="name each cache once")

    report = Report(
        mode="against-hydra",
        cache=redact(caches[0]),  # a password in the URL is never shown, logged or stored
        hydra=redact(args.hydra) if args.job else None,
        job=args.job,
        trusted_keys=[str(k) for k in keys],
        started=now(),
    )
    if len(caches) > 1:
        report.schema_version = SCHEMA_VERSION_CACHES
    locals_ = query_local(args.targets, closure=args.closure) if args.targets else []
    products: list[HydraProduct] = []
    unmatched: list[str] = []
    hydra_items: list[PathResult] = []
    if args.job:
        locals_, job_pairs, products, unmatched, hydra_items = _hydra_job(args, report, locals_)
        pairs += job_pairs

    missing_on_hydra: list[PathResult] = []
    pair_locals: dict[str, LocalPath] = {}
    if args.pair_with_hydra:
        from orchestrator.verify.hydrapair import ISO_NOTE, pair_with_hydra

        pair_locals, pairs, locals_, missing_on_hydra = pair_with_hydra(
            args.targets,
            locals_,
            pairs,
            theirs=args.theirs,
            cache_url=caches[0],
            jobs=args.jobs,
            timeout=args.timeout,
            retries=args.retries,
            client=args.http_client,
        )
        # every path of the closure is now a pair, a path both sides share, or missing on Hydra
        if products:
            _log(ISO_NOTE)
    if pairs:
        known = {lp.path for lp in locals_} | set(pair_locals)
        wanted = [p for pair in pairs for p in (pair.ours, pair.theirs) if p not in known]
        if wanted:
            pair_locals |= {lp.path: lp for lp in query_local(wanted)}

    sink = _results_file(args)
    sink.start(report)
    for r in [*missing_on_hydra, *hydra_items, *map(_unmatched_result, unmatched)]:
        report.results.append(r)
        sink.result(r)
    n = len(locals_) + len(pairs) + len(products)
    _log(f"checking {n} item(s) against {', '.join(redact(c) for c in caches)}")
    try:
        results = _check_every_cache(
            args, caches, keys, (locals_, pairs, pair_locals, products), report, sink
        )
    finally:
        sink.close()
    if args.pair_with_hydra:
        for r in results:
            if r.kind == "product":
                r.reason = f"{r.reason}; {ISO_NOTE}"
    report.results.extend(results)
    return _finish(args, report, sink)


def _hydra_job(
    args: argparse.Namespace, report: Report, locals_: list[LocalPath]
) -> tuple[list[LocalPath], list[Pair], list[HydraProduct], list[str], list[PathResult]]:
    """``--job``: Hydra's latest build of the job, planned against the local paths (its outputs
    when no TARGET was named): the local paths, pairs, build products, Hydra outputs without a
    local partner, and an error for each value of the answer that is not Nix's grammar."""
    with HydraClient(args.hydra, timeout=args.timeout, retries=args.retries) as hydra:
        build = hydra.latest(args.job)
    report.hydra_build = build.id
    _log(f"Hydra {args.job}: latest successful build {build.id}")
    if not locals_:
        # only values that are store paths by Nix's grammar reach `nix path-info`
        outs, _ = hydra_outputs(build)
        locals_ = query_store_paths(list(outs.values()), closure=args.closure)
    plan = plan_hydra(build, locals_)
    items = _hydra_item_results(build.id, plan.invalid, has_outputs=bool(build.buildoutputs))
    return locals_, plan.pairs, plan.products, plan.unmatched, items


def _check_every_cache(
    args: argparse.Namespace,
    caches: list[str],
    keys: list[Any],
    work: tuple[list[LocalPath], list[Pair], dict[str, LocalPath], list[HydraProduct]],
    report: Report,
    sink: ResultsFile,
) -> list[PathResult]:
    """Every item against every cache: with one cache each result as it comes; with several,
    a verdict per cache and the consensus, known once every cache answered."""
    locals_, pairs, pair_locals, products = work
    if len(caches) == 1:
        results, report.cache_gave_up = asyncio.run(
            _check(args, caches[0], keys, locals_, pairs, pair_locals, products, sink.result)
        )
        return results
    answers = _check_caches(args, caches, keys, locals_, pairs, pair_locals, products)
    results, report.caches, report.disagreeing_caches = combine(
        [redact(c) for c in caches], [rs for rs, _ in answers], [why for _, why in answers]
    )
    downs = [f"{redact(url)}: {why}" for url, (_, why) in zip(caches, answers, strict=True) if why]
    report.cache_gave_up = "; ".join(downs) or None
    for r in results:
        sink.result(r)
    return results


def _unmatched_result(hydra_out: str) -> PathResult:
    return PathResult(
        path=hydra_out,
        status=Status.not_built_locally,
        reason=f"no local output pairs with Hydra's output {hydra_out}",
        hint="name the local build of this job as TARGET",
    )


def _hydra_item_results(
    build_id: int, invalid: list[tuple[str, str]], *, has_outputs: bool
) -> list[PathResult]:
    """An error for each value of Hydra's answer that breaks Nix's grammar; and, for a build
    without outputs, an inconclusive result: nothing compared is never "reproducible"."""
    out = [
        PathResult(path=f"hydra build {build_id}: {what}", status=Status.error, reason=why)
        for what, why in invalid
    ]
    if not has_outputs:
        out.append(
            PathResult(
                path=f"hydra build {build_id}",
                status=Status.not_in_cache,
                reason="Hydra's build lists no outputs: nothing to compare",
                hint="check the job name; --strict fails on this",
            )
        )
    return out


def _check_caches(
    args: argparse.Namespace,
    caches: list[str],
    keys: list[Any],
    locals_: list[LocalPath],
    pairs: list[Pair],
    pair_locals: dict[str, LocalPath],
    products: list[HydraProduct],
) -> list[tuple[list[PathResult], str | None]]:
    """Every check against every cache, the caches concurrently: each cache's results in input
    order, and why it was given up on, if it was."""

    async def all_caches() -> list[tuple[list[PathResult], str | None]]:
        return list(
            await asyncio.gather(
                *(
                    _check(args, url, keys, locals_, pairs, pair_locals, products, None)
                    for url in caches
                )
            )
        )

    return asyncio.run(all_caches())


async def _check(
    args: argparse.Namespace,
    cache_url: str,
    keys: list[Any],
    locals_: list[LocalPath],
    pairs: list[Pair],
    pair_locals: dict[str, LocalPath],
    products: list[HydraProduct],
    on_result: Any,
) -> tuple[list[PathResult], str | None]:
    """Every check against one cache; and why the cache was given up on, if it was."""
    async with BinaryCache(
        cache_url,
        concurrency=args.jobs,
        timeout=args.timeout,
        retries=args.retries,
        client=args.http_client,
    ) as cache:
        verifier = Verifier(
            cache,
            keys,
            jobs=args.jobs,
            rehash=args.rehash,
            diff=args.diff,
            diff_tool=args.diff_tool,
            on_result=on_result,
        )
        results = await verify_against_cache(
            verifier, locals_, pairs, pair_locals, products, hydra_url=redact(args.hydra)
        )
        return results, cache.give_up.down


def _finish(args: argparse.Namespace, report: Report, sink: ResultsFile) -> int:
    report.summary = Summary.of(report.results, strict=args.strict)
    report.finished = now()
    report.complete = True
    sink.end(report)
    if args.html is not None:
        from orchestrator.verify.html import write_verify_page

        page = write_verify_page(report, args.html)
        _log(f"report page: {escape(str(page))}")
    if report.disagreeing_caches:
        _log(
            "caches that signed a NarHash differing from the local build's or another trusted "
            f"cache's: {escape(', '.join(report.disagreeing_caches))}"
        )
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        if report.cache_gave_up:
            _log(f"gave up on {escape(str(report.cache))}: {escape(report.cache_gave_up)}")
        _log(report.summary.line())
    else:
        print_table(report, verbose=args.verbose)
    return report.summary.exit_code
