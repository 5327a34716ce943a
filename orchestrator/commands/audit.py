"""``orchestrator audit TARGET [--json]``: every input of TARGET's closure that is not built.

Evaluation only (``nix show-derivation -r``): works offline on a fresh clone. Exit 1 when an
unexpected binary is found, else 0. See :mod:`orchestrator.verify.audit` for the classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from orchestrator.build.plan import closure_of
from orchestrator.build.targets import (
    chain_steps,
    default_flake,
    installable_args,
)
from orchestrator.commands import options
from orchestrator.display import lines, text
from orchestrator.tables import Rows, columns, emit
from orchestrator.upstream.locate import locate_tree
from orchestrator.verify.audit import (
    BINARY_KINDS,
    AuditReport,
    Finding,
    TreeIndex,
    audit,
    distinct_seeds,
)
from orchestrator.verify.bridge_audit import (
    BridgeAudit,
    audit_bridged,
    is_bridged_target,
    load_policy,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="classify every input of a target that is not built (seeds, sources, patches)",
        description="Walk TARGET's derivation closure (evaluation only) and classify every "
        "input that is not itself built. Exit 1 when an unexpected binary is found.",
    )
    p.add_argument(
        "target", metavar="TARGET", help="step attribute, stage0, live-bootstrap, or an installable"
    )
    options.json_output(p)
    options.target_source(p)
    options.live_bootstrap(p, default="the pinned input (also to recognise files by content)")
    p.add_argument("--all", action="store_true", help="list every file, not counts of text files")
    p.set_defaults(func=run)


def _tree(explicit: str | None) -> TreeIndex:
    try:
        tree = locate_tree(explicit)
    except Exception as exc:  # noqa: BLE001 -- without a tree, seeds are told by path only
        err.print(
            lines(
                f"no live-bootstrap tree to compare with ({exc}); "
                "seeds are recognised by path only",
                "yellow",
            ),
            soft_wrap=True,
        )
        return TreeIndex(None)
    return TreeIndex(Path(tree.root))


def run(args: argparse.Namespace) -> int:
    inst = installable_args(args.target, options.target_source_of(args))
    err.print(text("evaluating ", " ".join(inst)), soft_wrap=True)
    attrs = [a for a, _ in chain_steps(args.live_bootstrap)]
    closure = closure_of(inst, args.target, attrs)
    report = audit(args.target, closure, _tree(args.live_bootstrap))
    bridged = None
    if is_bridged_target(args.target) and not args.file:
        flake = args.target.split("#", 1)[0] if "#" in args.target else None
        bridged = audit_bridged(closure, load_policy(flake or args.flake or default_flake()))
    if args.json:
        data = json.loads(report.model_dump_json())
        if bridged is not None:
            data["bridge"] = bridged.model_dump()
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        print_report(report, show_all=args.all)
        if bridged is not None:
            print_bridged(bridged)
    return 0 if report.ok and (bridged is None or bridged.ok) else 1


def print_bridged(b: BridgeAudit) -> None:
    """The nixpkgs side of a bridged closure: binary bootstraps by name, nixpkgs' own bootstrap."""
    for f in b.binary_bootstraps:
        out.print(
            f"binary bootstrap nixpkgs takes: {escape(f.name)} ({escape(f.url or '')}): {escape(f.why)}"
        )
    if not b.binary_bootstraps:
        out.print("binary bootstraps nixpkgs takes: none in this closure")
    for f in b.nixpkgs_bootstrap:
        out.print(
            f"[bold red]nixpkgs' own bootstrap in the closure:[/] {escape(f.drv)} ({escape(f.why)}; "
            f"used by {escape(', '.join(f.used_by[:3]) or '-')})"
        )
    if not b.nixpkgs_bootstrap:
        out.print(f"no derivation of nixpkgs' own bootstrap (nixpkgs {escape(b.nixpkgs_rev)})")


def _where(f: Finding) -> str:
    """The input, whole: a store path is never shortened (it is what `nix` commands take)."""
    if f.store_path.endswith(".drv"):
        return f.file or f.store_path
    return f"{f.store_path}/{f.file}" if f.file else f.store_path


def _seed_name(f: Finding) -> str:
    where = f.origin.split(":", 1)[1] if f.origin else (f.file or f.store_path)
    i = where.find("bootstrap-seeds/")
    return where[i + len("bootstrap-seeds/") :] if i >= 0 else where.rsplit("/", 1)[-1]


def print_report(report: AuditReport, *, show_all: bool = False) -> None:
    table = Rows(
        f"audit of {report.target}",
        columns("kind", "input", "bytes", "origin / url", "used by", right=("bytes",)),
    )
    cell_styles = {}
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for f in report.findings:
        listed = show_all or f.kind in BINARY_KINDS or f.kind == "fixed-output"
        if listed:
            style = {"seed": "bold green", "unexpected-binary": "bold red"}.get(f.kind)
            if style:
                cell_styles[(len(table.rows), 0)] = style
            table.add(
                f.kind,
                _where(f),
                f.size if f.size is not None else "",
                f.origin or f.url or "",
                ", ".join(f.used_by[:3]) + (" …" if len(f.used_by) > 3 else ""),
            )
        else:
            grouped.setdefault((f.kind, f.store_path if f.kind != "source" else ""), []).append(f)
    for (kind, path), items in sorted(grouped.items()):
        size = sum(f.size or 0 for f in items)
        users = sorted({u for f in items for u in f.used_by})
        table.add(
            kind,
            f"{len(items)} file(s)" + (f" in {path}" if path else ""),
            size or "",
            "",
            ", ".join(users[:3]) + (" …" if len(users) > 3 else ""),
        )
    emit(table, console=out, cell_styles=cell_styles)
    seeds = distinct_seeds(report.findings)
    seed_list = ", ".join(f"{_seed_name(f)} {f.size} B" for f in seeds)
    out.print(
        text(
            f"{report.derivations} derivations ({report.built} built); "
            + ", ".join(f"{k}: {v}" for k, v in report.counts.items())
        )
    )
    out.print(
        text(
            f"binary seeds: {report.seed_bytes} bytes in {len(seeds)} distinct file(s)"
            + (f" ({seed_list})" if seeds else "")
        )
    )
    if report.unexpected:
        out.print(f"[bold red]{report.unexpected} unexpected binary file(s)[/]")
