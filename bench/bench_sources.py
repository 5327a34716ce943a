#!/usr/bin/env python3
"""Generation over a very large ``sources`` file is linear (issue 8: a 10 MB file took 72 s).

A one-step tree whose ``steps/big-1/sources`` holds N MB of lines, in two shapes:
- ``distinct``: every line a new distfile (the step file and distfiles.nix list them all);
- ``mirrors``: ten distfiles, each with thousands of alternative URLs.
Each size runs in fresh interpreters (median of --repeat runs) (parse + resolve + render, in memory, as `generate` does
before writing). Linear means the time per MB stays flat from 1 to 2 to 4 MB; the ratio uses CPU time, which a
busy machine disturbs far less than wall time.

Run from the repository root: python bench/bench_sources.py [--sizes 1,2,4] [--repo DIR]
(``--repo``: measure another copy of the repository, e.g. an older commit, side by side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHA = "ab" * 32

CHILD = r"""
import inspect, json, sys, time
from orchestrator.upstream.chain import load_chain
from orchestrator.generate.render import render_steps
from orchestrator.upstream.tree import SourceTree
t, c = time.perf_counter(), time.process_time()
tree = SourceTree.open(sys.argv[1], commit="0" * 40)
# the printer takes the chain alone since it became pure; older copies (--repo) took the tree too
pure = len(inspect.signature(render_steps).parameters) == 1
files = render_steps(load_chain(tree)) if pure else render_steps(tree, load_chain(tree))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def make_tree(root: Path, megabytes: float, shape: str) -> int:
    (root / "steps/big-1").mkdir(parents=True)
    (root / "steps/manifest").write_text("build: big-1\n")
    (root / "steps/env").write_text("PREFIX=/usr\n")
    (root / "steps/big-1/pass1.kaem").write_text("")
    lines = []
    size = 0
    i = 0
    while size < megabytes * 1_000_000:
        if shape == "distinct":
            line = f"f https://mirror.example.org/pub/big/file-{i:07d}.tar.gz {SHA}\n"
        else:
            line = f"f https://mirror-{i:07d}.example.org/pub/big/file-{i % 10}.tar.gz {SHA}\n"
        lines.append(line)
        size += len(line)
        i += 1
    (root / "steps/big-1/sources").write_text("".join(lines))
    return len(lines)


def run(repo: Path, tree: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree)],
        cwd=repo,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,2,4", help="megabytes, comma-separated")
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    args = ap.parse_args()
    sizes = [float(x) for x in args.sizes.split(",")]
    print(f"repository: {args.repo}")
    for shape in ("distinct", "mirrors"):
        base = None
        for mb in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                n = make_tree(Path(tmp), mb, shape)
                runs = [run(args.repo, Path(tmp)) for _ in range(args.repeat)]
            seconds = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            per_mb = cpu / mb
            base = base or per_mb
            print(
                f"{shape:8} {mb:4g} MB ({n:7d} lines): {seconds:7.3f} s wall, {cpu:7.3f} s CPU, "
                f"{per_mb:6.3f} CPU s/MB (x{per_mb / base:.2f} of the smallest size's)"
            )


if __name__ == "__main__":
    main()
