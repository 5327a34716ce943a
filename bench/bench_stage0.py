#!/usr/bin/env python3
"""`nix build` of stage0 vs running stage0-posix natively from the same seed (issue 2 target).

Target: Nix wall time <= 1.10 x the native run, for x86 and AMD64. Both are measured here, side
by side in one run:

- native: stage0-posix copied to a scratch directory, then
  `./bootstrap-seeds/POSIX/<ARCH>/kaem-optional-seed kaem.<arch>` there (the seed kaem runs the
  whole chain, answers check included);
- nix: the derivations of nix/stage0.nix built in the sandbox from the pinned live-bootstrap
  input, with a salt in the first step's environment so that every store path is new and Nix
  really builds all of them (the same data otherwise: steps/stage0/<arch>.json).

Usage (repository root): python bench/bench_stage0.py LIVE_BOOTSTRAP_CHECKOUT [--arch x86 amd64]
    [--max-jobs N]   (default: Nix's configured max-jobs, as a plain `nix build` uses)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.stage0.translate import ARCHES, STAGE0  # noqa: E402
from orchestrator.upstream.locate import _from_store, read_lock  # noqa: E402

FLAGS = ["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""]


def native(checkout: Path, arch: str) -> float:
    a = ARCHES[arch]
    with tempfile.TemporaryDirectory(prefix="stage0-native-") as tmp:
        work = Path(tmp) / "stage0-posix"
        shutil.copytree(
            checkout / STAGE0, work, symlinks=True, ignore=shutil.ignore_patterns(".git")
        )
        t = time.perf_counter()
        proc = subprocess.run(
            [f"./{a.seeds}/kaem-optional-seed", a.entry], cwd=work, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - t
        if proc.returncode != 0 or proc.stdout.count(": OK") < 19:
            raise SystemExit(
                f"native {arch} run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
    return elapsed


def nix(source: Path, arch: str, max_jobs: str | None) -> float:
    with tempfile.TemporaryDirectory(prefix="stage0-nix-") as tmp:
        steps = Path(tmp) / "steps"
        (steps / "stage0").mkdir(parents=True)
        data = json.loads((REPO / "steps" / "stage0" / f"{arch}.json").read_text())
        data["steps"][0].setdefault("env", {})["BENCH_SALT"] = {"lit": uuid.uuid4().hex}
        (steps / "stage0" / f"{arch}.json").write_text(json.dumps(data))
        expr = (
            f'(import {REPO}/nix/stage0.nix {{ live-bootstrap = builtins.storePath "{source}"; '
            f'steps = builtins.path {{ path = {steps}; name = "steps"; }}; }}).{arch}.package'
        )
        jobs = ["--max-jobs", max_jobs] if max_jobs else []
        t = time.perf_counter()
        proc = subprocess.run(
            [
                "nix",
                *FLAGS,
                "--option",
                "sandbox",
                "true",
                *jobs,
                "build",
                "--no-link",
                "--impure",
                "--expr",
                expr,
            ],
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"nix build of {arch} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "checkout", type=Path, help="live-bootstrap checkout with submodules (the pinned commit)"
    )
    ap.add_argument("--arch", nargs="+", default=["x86", "amd64"], choices=sorted(ARCHES))
    ap.add_argument("--max-jobs", default=None)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alternate native and nix runs this many times; report medians (this machine's "
        "run-to-run noise is +-15%%, larger than the margin being measured)",
    )
    args = ap.parse_args()
    source = _from_store(read_lock())
    if source is None:
        raise SystemExit("the pinned live-bootstrap input is not in the Nix store")
    rows = []
    for arch in args.arch:
        natives, nixes = [], []
        for _ in range(args.repeat):
            natives.append(native(args.checkout, arch))
            nixes.append(nix(source, arch, args.max_jobs))
        n, x = statistics.median(natives), statistics.median(nixes)
        rows.append((arch, n, x))
        print(
            f"{arch:6} native {n:8.1f} s   nix build {x:8.1f} s   ratio {x / n:5.2f}  (target <= 1.10)"
            f"   [runs: native {' '.join(f'{t:.1f}' for t in natives)}; nix {' '.join(f'{t:.1f}' for t in nixes)}]",
            flush=True,
        )
    ok = all(x / n <= 1.10 for _, n, x in rows)
    print("target met" if ok else "target NOT met")


if __name__ == "__main__":
    main()
