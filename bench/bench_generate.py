#!/usr/bin/env python3
"""Generation and evaluation speed over the full manifest (issue 2 targets).

Targets: `generate` over the full manifest < 1 s; `nix eval` of every step's drvPath < 5 s.
Run from the repository root: python bench/bench_generate.py [LIVE_BOOTSTRAP_TREE]
(default: the pinned flake input, as `generate` finds it; evaluation needs a real tree, since
stage0 and the runner read files a data-only snapshot does not have).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.generate.write import render_all, write_atomically  # noqa: E402
from orchestrator.upstream.chain import load_chain  # noqa: E402
from orchestrator.upstream.locate import locate_tree  # noqa: E402

FLAGS = ["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""]


def timed(fn, repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def cpu_timed(fn, repeat: int = 5) -> float:
    """CPU seconds of this process: what a busy machine disturbs least (side-by-side runs)."""
    runs = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        runs.append(time.process_time() - t)
    return statistics.median(runs)


def main() -> None:
    tree_path = locate_tree(sys.argv[1] if len(sys.argv) > 1 else None).root
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "steps"

        def gen() -> None:
            tree = locate_tree(tree_path)
            files, _ = render_all(tree, load_chain(tree), REPO / "steps")
            write_atomically(out, files)

        t_gen = timed(gen)
        c_gen = cpu_timed(gen)
        n = len(list(out.glob("*.nix")))
        print(
            f"generate (parse + resolve + render + atomic write, {n} files): {t_gen:.3f} s "
            f"({c_gen:.3f} s CPU)  (target < 1 s)"
        )

        expr = (
            f'let c = import {REPO}/nix {{ live-bootstrap = {tree_path}; steps = {out}; system = "x86_64-linux"; }}; in '
            "map (p: p.drvPath) (builtins.attrValues c.packages) "
            "++ builtins.concatMap (s: map (d: d.drvPath) (s.distfiles or [])) c.chainSteps"
        )

        def ev() -> None:
            proc = subprocess.run(
                ["nix", *FLAGS, "eval", "--json", "--impure", "--expr", expr],
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                raise SystemExit(proc.stderr)
            json.loads(proc.stdout)

        t_eval = timed(ev, repeat=3)
        print(
            f"nix eval of every package (steps, stage0) and distfile drvPath: {t_eval:.3f} s  (target < 5 s)"
        )


if __name__ == "__main__":
    main()
