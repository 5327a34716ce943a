"""Benchmarks of the runner (nix/runner.nix + nix/runner/ns-run.c); ratios from one run.

1. Per-step overhead: assemble + run an empty step + capture, on top of 10 / 50 / 150 layers,
   and on a small vs a large root filesystem (flat in its size: overlay, not copy). Measured as
   the wall time of `nix-build` of an empty step minus that of a trivial derivation (Nix's own
   cost), each the median of a few fresh builds.
2. Store footprint of a chain of steps vs one cumulative root filesystem with the same content
   (the flattened checkpoint of all layers), in disk blocks and in bytes.
3. The step DAG's critical path vs the sum of all steps (from the real chain's derivations).
4. Copy-up (`copyuptree /usr`, what the kaem era and the early bash era get): a step over a
   synthetic /usr of N MiB (default 100 and 500) that changes nothing, vs `cp -a` of the same
   tree on the same file system (page cache warm for both); ns-run's copy time, capture time
   and peak RSS (VmHWM, which it reports itself) against cp's time and peak RSS.

The layers are made with the host-built ns-run and a busybox root (as the synthetic tests do):
the real chain's steps past simple-patch need distfiles that are not available offline.

    python bench/bench_runner.py [--layers 10,50,150] [--repeat 3] [--copyup 100,500]
                                 [--skip-overhead] [--skip-dag] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runner_support import synth  # noqa: E402

EXPR = """\
{ repo, runner, base, big, n, nonce, withBig ? false, cu ? "", measureRunner ? runner }:
let
  lib = import (repo + "/nix/lib.nix");
  R = import (repo + "/nix/runner.nix") { inherit lib; };
  system = builtins.currentSystem;
  runnerP = builtins.storePath runner;
  below = [ { tree = builtins.storePath base; } ]
    ++ (if withBig then [ { tree = builtins.storePath big; } ] else [ ]);
  # layer i: a file of its own in shared directories, one overwrite, every 10th deletes a file
  mkLayer = i: layers: R.mkRun {
    name = "bench-layer-${toString i}";
    inherit system layers;
    runner = runnerP;
    label = "layer ${toString i}";
    spec = ''
      setenv PATH=/usr/bin
      arg /usr/bin/sh
      arg -c
      arg mkdir -p /usr/share/bench/d${toString (i / 10)} && head -c 1048576 /dev/urandom > /usr/share/bench/d${toString (i / 10)}/f${toString i} && rm -f /usr/share/bench/last && echo ${toString i} > /usr/share/bench/last ${if i > 0 && i - (i / 10) * 10 == 0 then "&& rm /usr/share/bench/d${toString (i / 10 - 1)}/f${toString (i - 5)}" else ""}
    '';
  };
  stack = k: if k == 0 then below else
    let prev = stack (k - 1); in prev ++ [ (R.asLayer (mkLayer (k - 1) prev)) ];
  layers = stack n;
  empty = R.mkRun {
    name = "bench-empty-${nonce}";
    inherit system layers;
    runner = builtins.storePath measureRunner;
    label = "empty step over ${toString n} layers";
    spec = "setenv PATH=/usr/bin\\narg /usr/bin/true\\n";
  };
  trivial = derivation {
    name = "bench-trivial-${nonce}";
    inherit system;
    builder = "${builtins.storePath base}/usr/bin/busybox";
    args = [ "mkdir" (builtins.placeholder "out") ];
  };
  flat = R.mkCheckpoint { name = "bench-flat-${toString n}"; inherit system layers; runner = runnerP; };
  # every file below /usr copied up, nothing changed (all copies dropped at capture)
  copyup = R.mkRun {
    name = "bench-copyup-${nonce}";
    inherit system;
    layers = below ++ [ { tree = builtins.storePath cu; } ];
    runner = builtins.storePath measureRunner;
    label = "copy-up of /usr";
    spec = "setenv PATH=/usr/bin\ncopyuptree /usr\narg /usr/bin/true\n";
  };
in
{ inherit empty trivial flat copyup; layerOutputs = map (l: l.tree) layers; }
"""

FLAGS = synth.NIX_FLAGS


LAST_LOG = [""]


def nix_build(expr: Path, args: list[str], attr: str) -> tuple[float, str]:
    t = time.monotonic()
    p = subprocess.run(
        ["nix-build", str(expr), "--no-out-link", *FLAGS, *args, "-A", attr],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(p.stderr[-4000:])
    LAST_LOG[0] = p.stderr
    return time.monotonic() - t, p.stdout.strip().splitlines()[-1]


def runner_times(log: str) -> tuple[int, int, int]:
    m = re.search(r"ns-run: time: assemble (\d+) ms.*?, run (\d+) ms, capture (\d+) ms", log)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (-1, -1, -1)


def du(paths: list[str], *, apparent: bool) -> int:
    if not paths:
        return 0
    flag = ["-b"] if apparent else ["-B1"]
    out = subprocess.run(["du", "-s", "-c", *flag, *paths], capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def make_big(work: Path) -> str:
    """A 'large root filesystem' layer: 400 MiB in 4000 files under 400 directories."""
    big = work / "big"
    if not big.exists():
        for d in range(400):
            dd = big / "usr" / "lib" / "big" / f"d{d}"
            dd.mkdir(parents=True)
            for f in range(10):
                (dd / f"f{f}").write_bytes(os.urandom(100 * 1024))
    return synth.store_add(big)


def build_other_runner(src: Path, work: Path) -> str:
    """ns-run from another source file (host compiler, as synth.build_runner), in the store."""
    d = work / "other-runner"
    (d / "bin").mkdir(parents=True, exist_ok=True)
    host_h = REPO / "nix" / "runner" / "host.h"
    subprocess.run(
        ["gcc", "-O2", "-static", "-include", str(host_h), "-o", str(d / "bin/ns-run"), str(src)],
        check=True,
    )
    return synth.store_add(d)


def make_usr(work: Path, mib: int) -> str:
    """A layer with `mib` MiB below /usr/lib/cu, in files of 256 KiB, 40 per directory."""
    d = work / f"usr-{mib}"
    if not d.exists():
        n = mib * 4
        for i in range(n):
            dd = d / "usr" / "lib" / "cu" / f"d{i // 40}"
            dd.mkdir(parents=True, exist_ok=True)
            (dd / f"f{i}").write_bytes(os.urandom(256 * 1024))
    return synth.store_add(d)


def ns_run_detail(log: str) -> dict:
    m = re.search(r"the rest (\d+)\) ms, run (\d+) ms, capture (\d+) ms, peak RSS\s+(\d+) kB", log)
    if not m:
        return {}
    return {
        "copy_ms": int(m.group(1)),
        "capture_ms": int(m.group(3)),
        "peak_rss_kb": int(m.group(4)),
    }


def cp_a(src: str, work: Path) -> dict:
    """`cp -a` of the tree: wall time, and cp's own peak RSS (measured by a fresh Python process
    whose only child is cp)."""
    dst = work / "cp-a-target"
    if dst.exists():
        subprocess.run(["chmod", "-R", "u+w", str(dst)], check=True)
        shutil.rmtree(dst)
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "subprocess.run(['cp', '-a', sys.argv[1], sys.argv[2]], check=True)\n"
        "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe, src, str(dst)], capture_output=True, text=True, check=True
    )
    elapsed, peak = p.stdout.split()
    subprocess.run(["chmod", "-R", "u+w", str(dst)], check=True)
    shutil.rmtree(dst)
    return {"s": round(float(elapsed), 3), "peak_rss_kb": int(peak)}


def copyup_bench(expr: Path, common: list[str], work: Path, sizes: list[int], repeat: int) -> list:
    out = []
    for mib in sizes:
        cu = make_usr(work, mib)
        args = [*common, "--arg", "n", "0", "--argstr", "cu", cu]
        cp_a(cu + "/usr", work)  # warm the page cache for both
        runs, details, trivial, cps = [], [], [], []
        for r in range(repeat):
            nonce = f"cu{mib}-{time.time_ns()}-{r}"
            wall, _ = nix_build(expr, [*args, "--argstr", "nonce", nonce], "copyup")
            runs.append(wall)
            details.append(ns_run_detail(LAST_LOG[0]))
            trivial.append(nix_build(expr, [*args, "--argstr", "nonce", nonce], "trivial")[0])
            cps.append(cp_a(cu + "/usr", work))
        med = statistics.median
        copy_ms = med(d["copy_ms"] for d in details)
        capture_ms = med(d["capture_ms"] for d in details)
        cp_s = med(c["s"] for c in cps)
        out.append(
            {
                "mib": mib,
                "step_minus_trivial_s": round(med(runs) - med(trivial), 3),
                "ns_run_copy_ms": copy_ms,
                "ns_run_capture_ms": capture_ms,
                "ns_run_peak_rss_kb": max(d["peak_rss_kb"] for d in details),
                "cp_a_s": cp_s,
                "cp_a_peak_rss_kb": max(c["peak_rss_kb"] for c in cps),
                "ratio_copy_plus_capture_vs_cp_a": round((copy_ms + capture_ms) / 1000 / cp_s, 2),
            }
        )
    return out


def critical_path() -> dict:
    """Longest chain of step derivations vs the number of steps, from the real chain's .drvs."""
    p = subprocess.run(
        [
            "nix",
            *FLAGS,
            "eval",
            "--json",
            ".#hydraJobs.chain",
            "--apply",
            "ps: builtins.mapAttrs (n: d: d.drvPath) ps",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if p.returncode != 0:
        return {"error": p.stderr[-500:]}
    drvs = json.loads(p.stdout)
    steps = drvs
    show = subprocess.run(
        ["nix", *FLAGS, "show-derivation", *steps.values()], capture_output=True, text=True
    )
    graph = json.loads(show.stdout)
    ids = set(steps.values())
    deps = {d: [i for i in graph[d]["inputDrvs"] if i in ids] for d in ids}
    memo: dict[str, int] = {}

    def depth(d: str) -> int:
        if d not in memo:
            memo[d] = 1 + max((depth(x) for x in deps[d]), default=0)
        return memo[d]

    sys.setrecursionlimit(10000)
    longest = max(depth(d) for d in ids)
    return {
        "steps": len(ids),
        "critical_path_steps": longest,
        "ratio": round(longest / len(ids), 3),
        "note": "each step depends on every earlier one (one root filesystem), so the DAG is "
        "a chain: critical path = sum of all steps",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="10,50,150")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copyup", default="100,500", help="sizes in MiB ('' to skip)")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument(
        "--ab-src",
        metavar="NS_RUN_C",
        help="also measure an ns-run built from this source (e.g. an older revision), "
        "interleaved with the current one, over the same layers",
    )
    ap.add_argument("--skip-dag", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    missing = synth.missing_tools()
    if missing:
        raise SystemExit(f"needs {', '.join(missing)}")
    work = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    try:
        s = synth.Synth(work / "synth")
        s.prepare(None, update_checksums=True)
        expr = work / "bench.nix"
        expr.write_text(EXPR)
        big = make_big(work)
        common = [
            "--arg",
            "repo",
            str(REPO),
            "--argstr",
            "runner",
            s.runner,
            "--argstr",
            "base",
            s.base,
            "--argstr",
            "big",
            big,
        ]
        results: dict = {"overhead": [], "footprint": {}, "dag": {}, "copyup": []}
        other = build_other_runner(Path(a.ab_src), work) if a.ab_src else None
        counts = [int(x) for x in a.layers.split(",")]
        sizes = [int(x) for x in a.copyup.split(",") if x]
        results["copyup"] = copyup_bench(expr, common, work, sizes, a.repeat)
        for with_big in (False, True) if not a.skip_overhead else ():
            for n in counts:
                # build the layers (and warm the caches) outside the measurement
                nix_build(
                    expr,
                    [
                        *common,
                        "--arg",
                        "n",
                        str(n),
                        "--argstr",
                        "nonce",
                        "warm",
                        "--arg",
                        "withBig",
                        "true" if with_big else "false",
                    ],
                    "empty",
                )
                runs, trivial, inner, other_runs, other_inner = [], [], [], [], []
                for r in range(a.repeat):
                    nonce = f"{time.time_ns()}-{r}"
                    args = [
                        *common,
                        "--arg",
                        "n",
                        str(n),
                        "--argstr",
                        "nonce",
                        nonce,
                        "--arg",
                        "withBig",
                        "true" if with_big else "false",
                    ]
                    runs.append(nix_build(expr, args, "empty")[0])
                    inner.append(runner_times(LAST_LOG[0]))
                    trivial.append(nix_build(expr, args, "trivial")[0])
                    if other:
                        o = [*args, "--argstr", "measureRunner", other]
                        other_runs.append(nix_build(expr, o, "empty")[0])
                        other_inner.append(runner_times(LAST_LOG[0]))
                med, base_cost = statistics.median(runs), statistics.median(trivial)
                results["overhead"].append(
                    {
                        "layers": n,
                        "rootfs": "large (+400 MiB)" if with_big else "small",
                        "step_s": round(med, 3),
                        "nix_trivial_s": round(base_cost, 3),
                        "overhead_s": round(med - base_cost, 3),
                        "ns_run_assemble_ms": statistics.median(t[0] for t in inner),
                        "ns_run_capture_ms": statistics.median(t[2] for t in inner),
                    }
                )
                if other:
                    results["overhead"][-1]["ab"] = {
                        "overhead_s": round(statistics.median(other_runs) - base_cost, 3),
                        "ns_run_assemble_ms": statistics.median(t[0] for t in other_inner),
                        "ns_run_capture_ms": statistics.median(t[2] for t in other_inner),
                    }
        # footprint: the chain's outputs vs the flattened root filesystem with the same content
        n = max(counts)
        if not a.skip_overhead:
            args = [*common, "--arg", "n", str(n), "--argstr", "nonce", "fp"]
            p = subprocess.run(
                [
                    "nix-instantiate",
                    "--eval",
                    "--strict",
                    "--json",
                    str(expr),
                    *FLAGS,
                    *args,
                    "-A",
                    "layerOutputs",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            trees = [t for t in json.loads(p.stdout) if "bench-layer" in t]
            outs = [str(Path(t).parent) for t in trees]
            _, flat = nix_build(expr, args, "flat")
            for apparent in (False, True):
                key = "bytes" if apparent else "disk_blocks"
                chain_size = du(outs, apparent=apparent)
                flat_size = du([flat + "/tree/usr/share/bench"], apparent=apparent)
                results["footprint"][key] = {
                    "chain": chain_size,
                    "cumulative_rootfs": flat_size,
                    "ratio": round(chain_size / flat_size, 3),
                }
            results["footprint"]["layers"] = n
        if not a.skip_dag:
            results["dag"] = critical_path()
        if a.json:
            print(json.dumps(results, indent=1))
        else:
            print("per-step overhead (assemble + empty step + capture), median of", a.repeat)
            for r in results["overhead"]:
                print(
                    f"  {r['layers']:>4} layers, {r['rootfs']:<17} step {r['step_s']:6.3f} s"
                    f"  nix trivial {r['nix_trivial_s']:6.3f} s  overhead {r['overhead_s']:6.3f} s"
                    f"  (ns-run: assemble {r['ns_run_assemble_ms']} ms,"
                    f" capture {r['ns_run_capture_ms']} ms)"
                )
                if "ab" in r:
                    print(
                        f"        other ns-run: overhead {r['ab']['overhead_s']:6.3f} s  (ns-run: "
                        f"assemble {r['ab']['ns_run_assemble_ms']} ms, capture "
                        f"{r['ab']['ns_run_capture_ms']} ms)"
                    )
            for key, v in results["footprint"].items():
                if isinstance(v, dict):
                    print(
                        f"footprint ({key}): chain {v['chain']} vs cumulative rootfs "
                        f"{v['cumulative_rootfs']}: {v['ratio']}x"
                    )
            print("step DAG:", json.dumps(results["dag"]))
            for c in results["copyup"]:
                print(
                    f"copy-up of {c['mib']} MiB: ns-run copy {c['ns_run_copy_ms']} ms + capture "
                    f"{c['ns_run_capture_ms']} ms (step - trivial {c['step_minus_trivial_s']} s), "
                    f"peak RSS {c['ns_run_peak_rss_kb']} kB; cp -a {c['cp_a_s']} s, peak RSS "
                    f"{c['cp_a_peak_rss_kb']} kB; ratio {c['ratio_copy_plus_capture_vs_cp_a']}"
                )
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
