#!/usr/bin/env python3
"""Evaluation cost of the stdenv bridge (issue 10 targets).

Targets: `nix eval` of every bridge drvPath (all steps, the set, every member's test) < 2 s;
the chain's own packages evaluate less than 10 % slower than before the bridge was added.

Side by side: the chain's package drvPaths are evaluated from this tree and from the commit
before nix/bridge.nix existed (git archive into a temporary directory), alternating runs, median
of each, through nix/default.nix as the flake calls it (so no copy of the repository is timed).
Run from the repository root: python bench/bench_bridge.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.upstream.locate import locate_tree  # noqa: E402

FLAGS = [
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
]

# every drvPath of the bridge (b = packages.bridge)
BRIDGE = (
    "map (s: s.drvPath) (builtins.attrValues b.steps) "
    "++ map (t: t.drvPath) (builtins.attrValues b.tests) ++ [ b.drvPath ]"
)


def nix_eval(expr: str) -> tuple[float, float, int]:
    """(wall seconds, the evaluator's own CPU seconds, number of drvPaths) of one evaluation.

    CPU time comes from NIX_SHOW_STATS (cpuTime): on a loaded machine wall time mostly measures
    the other processes, the evaluator's CPU time the evaluation."""
    t = time.perf_counter()
    p = subprocess.run(
        ["nix", "eval", *FLAGS, "--json", "--impure", "--expr", expr],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NIX_SHOW_STATS": "1"},
    )
    wall = time.perf_counter() - t
    stats = json.loads(p.stderr[p.stderr.index("{") :])
    return wall, float(stats["cpuTime"]), int(json.loads(p.stdout))


def count(paths: str) -> str:
    """Force every drvPath of the list expression, return how many there are."""
    return f'builtins.length (builtins.filter (x: x != "") ({paths}))'


def index(root: Path | str, tree: str) -> str:
    """nix/default.nix of a checkout, as the flake calls it (no flake copy of the repository)."""
    return (
        f"(import {root}/nix {{ live-bootstrap = {tree}; steps = {root}/steps; "
        'system = "x86_64-linux"; })'
    )


def median(runs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        runs[0][2],
    )


def base_commit() -> str:
    added = subprocess.run(
        ["git", "log", "--format=%H", "--diff-filter=A", "--", "nix/bridge.nix"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("nix/bridge.nix is not committed: nothing to compare with")
    return added[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tree = locate_tree(None).root  # the pinned input, as the flake has it
    now_index = index(REPO, tree)
    # the chain's own packages: every package but the bridge's (bridge, bridge-<step>)
    chain = (
        "map (n: c.packages.${n}.drvPath) (builtins.filter "
        '(n: builtins.substring 0 6 n != "bridge") (builtins.attrNames c.packages))'
    )

    def expr(ix: str, paths: str) -> str:
        return f"let c = {ix}; b = c.packages.bridge; in {count(paths)}"

    runs = {
        "bridge": [nix_eval(expr(now_index, BRIDGE)) for _ in range(args.repeat)],
        "chain": [nix_eval(expr(now_index, chain)) for _ in range(args.repeat)],
        "both": [nix_eval(expr(now_index, f"({chain}) ++ ({BRIDGE})")) for _ in range(args.repeat)],
    }
    (bw, bc, bn), (_cw, cc, _), (_tw, tc, _) = (
        median(runs[k]) for k in ("bridge", "chain", "both")
    )
    print(
        f"bridge: {bn} drvPaths (steps, tests, the set; the chain below them is forced too): "
        f"{bw:.2f} s wall, {bc:.2f} s evaluator CPU  (target < 2 s); "
        f"on top of the chain: {tc - cc:+.2f} s CPU"
    )

    with tempfile.TemporaryDirectory() as tmp:
        base = base_commit()
        archive = subprocess.run(
            ["git", "archive", base + "^"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        before_index = index(tmp, tree)
        now, before = [], []
        for _ in range(args.repeat):  # alternating, so that load changes hit both alike
            now.append(nix_eval(expr(now_index, chain)))
            before.append(nix_eval(f"let c = {before_index}; in {count(chain)}"))
        (nw, nc, nn), (ow, oc, on) = median(now), median(before)
        print(
            f"chain packages ({nn} drvPaths now, {on} before): {nc:.2f} s CPU with the bridge, "
            f"{oc:.2f} s before it ({base[:12]}^): {100 * (nc / oc - 1):+.1f} % "
            f"(wall {nw:.2f} s vs {ow:.2f} s)  (target < +10 %)"
        )


if __name__ == "__main__":
    main()
