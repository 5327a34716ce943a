"""``orchestrator plan [--live-bootstrap PATH] [--profile NAME] [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.bridge.members import DATA_FILE, load
from orchestrator.commands import options
from orchestrator.display import text
from orchestrator.tables import Rows, columns, emit
from orchestrator.upstream.chain import Chain, StepInfo, load_chain
from orchestrator.upstream.locate import (
    chosen_tree,
    committed_tree,
    read_tree,
)
from orchestrator.upstream.overrides import apply_overrides, load_overrides
from orchestrator.upstream.profiles import DEFAULT_PROFILE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="show the resolved chain: what script-generator would run")
    options.live_bootstrap(p)
    options.profile(
        p, f"bootstrap.cfg the predicates are evaluated under (default {DEFAULT_PROFILE})"
    )
    options.json_output(
        p, "machine-readable list in manifest order (number from 1, attr as build takes it)"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="table: also show entries whose predicate is false, and defines",
    )
    p.add_argument(
        "--bridge",
        action="store_true",
        help="also list the stdenv bridge's steps (stdenv-bridge/members.json) after the chain",
    )
    options.steps_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = chosen_tree(args.live_bootstrap)
    tree = read_tree(chosen) if chosen else committed_tree(args.steps)
    chain = apply_overrides(load_chain(tree, args.profile), load_overrides(args.steps))
    sources = {s.step.index: len(s.distfiles) for s in chain.steps}
    if args.json:
        rows = [
            {
                "index": s.step.index,
                "number": s.step.index + 1,
                "directive": s.step.directive,
                "name": s.step.name,
                "pass": s.step.pass_no,
                "era": s.step.era,
                "ci_pass": s.step.ci_pass,
                "environment_reset": s.step.environment_reset,
                "attr": s.step.attr_name,
                "line": s.step.line,
                "sources": sources[s.step.index],
                "predicate": s.step.predicate,
                "package": s.package_file,
                "override": s.override.version if s.override else None,
                "package_check": _package_check(s),
            }
            for s in chain.steps
        ]
        if args.bridge:
            rows += _bridge_rows(chain, len(rows))
        print(json.dumps(rows, indent=1))
        return 0
    # "#" counts from 1 like build's "step i/N" and verify's table; "attribute" is the name
    # build, verify, audit and bump take
    table = Rows(
        f"live-bootstrap {(chain.commit or '?')[:12]} - profile {chain.profile}: "
        f"{len(chain.steps)} steps",
        columns(
            "#",
            "attribute",
            "directive",
            "name",
            "pass",
            "era",
            "sources",
            "predicate",
            right=("#", "pass", "sources"),
        ),
    )
    by_line = {s.step.line: s for s in chain.steps}
    for ev in chain.plan.evaluated:
        info = by_line.get(ev.entry.line)
        if info is None and not args.all:
            continue
        pred = ev.entry.predicate_text or ""
        if pred:
            pred = f"{pred} -> {ev.predicate_result}"
        if info is None:
            table.add("", "", ev.entry.kind, ev.entry.arg, "", "", "", pred, style="dim")
            continue
        s = info.step
        table.add(
            s.index + 1,
            s.attr_name,
            s.directive,
            text(s.name, f" [override {info.override.version}: no upstream pin]")
            if info.override
            else s.name,
            s.pass_no or "",
            s.era,
            sources[s.index],
            pred,
        )
    emit(table)
    if args.bridge:
        _print_bridge(chain, len(chain.steps))
    return 0


def _bridge_rows(chain: Chain, start: int) -> list[dict[str, Any]]:
    builds = {s.step.name for s in chain.steps if s.step.directive == "build"}
    data = load(DATA_FILE, chain_builds=builds)
    return [
        {
            "index": start + i,
            "directive": "bridge",
            "name": f"{b.name}-{b.version}",
            "pass": None,
            "era": "bridge",
            "attr": b.attr,
            "member": b.member,
            "from_chain": b.step,
            "inputs": b.inputs,
            "sources": len(b.sources),
            "nixpkgs_version": b.nixpkgs.version,
            "script": b.script,
        }
        for i, b in enumerate(data.steps)
    ]


def _print_bridge(chain: Chain, start: int) -> None:
    rows = _bridge_rows(chain, start)
    table = Rows(
        f"stdenv bridge (stdenv-bridge/members.json): {len(rows)} steps after the chain, "
        "on its final system",
        columns("#", "step", "member", "from", "nixpkgs", "script", right=("#",)),
    )
    for r in rows:
        origin = (
            f"chain {r['from_chain']}"
            if r["from_chain"]
            else ", ".join([f"{r['sources']} source(s)", *r["inputs"]])
        )
        table.add(
            r["index"],
            r["name"],
            "yes" if r["member"] else "",
            origin,
            r["nixpkgs_version"],
            r["script"],
        )
    emit(table)


def _package_check(s: StepInfo) -> str | None:
    """How the step's bash-era package tarball is checked: upstream's pin, or none."""
    if s.package_file is None:
        return None
    return "no upstream pin" if s.package_sha256 is None else "SHA256SUMS.pkgs"
