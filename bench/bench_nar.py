"""Benchmark: pure-Python NAR hashing, measured side by side in one run.

1. Large files: ``nar_hash`` throughput vs ``sha256sum`` over the same bytes (target >= 0.8x).
2. Many small files: ``nar_hash`` vs ``nix hash path`` on the same tree (target: within 1.5x).
   Both are timed as a fresh process (``python -m orchestrator nar hash`` vs ``nix hash path``)
   and, for the Python side, also in-process.

    python bench/bench_nar.py [--big-mib 1024] [--files 20000]

Each measurement is the best of a few runs with a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.formats.nar import nar_hash  # noqa: E402

NIX = ["nix", "--extra-experimental-features", "nix-command"]


def best(fn, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout


def make_big(path: Path, mib: int) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.writelines(chunk[i % 256 :] + chunk[: i % 256] for i in range(mib))


def make_small_tree(root: Path, files: int) -> None:
    rng = random.Random(1)
    dirs = [root]
    root.mkdir()
    for i in range(files // 50):
        d = rng.choice(dirs) / f"dir{i}"
        d.mkdir()
        dirs.append(d)
    for i in range(files):
        p = rng.choice(dirs) / f"file{i}.txt"
        p.write_bytes(rng.randbytes(rng.choice([0, 10, 100, 500, 1000, 2000, 4000, 9000])))
        if i % 10 == 0:
            p.chmod(0o755)
        if i % 25 == 0:
            (p.parent / f"link{i}").symlink_to(p.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-nar-") as tmp_s:
        tmp = Path(tmp_s)

        big = tmp / "big.bin"
        make_big(big, args.big_mib)
        size = big.stat().st_size
        subprocess.run(["cat", str(big)], check=True, stdout=subprocess.DEVNULL)  # warm the cache
        ours = nar_hash(big)
        t_sha = best(lambda: run(["sha256sum", str(big)]))
        t_py = best(lambda: nar_hash(big))
        mb = size / 1e6
        print(f"large file, {size >> 20} MiB:")
        print(f"  sha256sum        {t_sha:6.2f} s  {mb / t_sha:8.0f} MB/s")
        print(f"  nar_hash (py)    {t_py:6.2f} s  {mb / t_py:8.0f} MB/s")
        ratio = t_sha / t_py
        print(
            f"  throughput ratio python/sha256sum = {ratio:.2f}x "
            f"(target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'})"
        )
        assert ours.nar_size == size + 112  # header + padding framing of one regular file
        big.unlink()

        tree = tmp / "tree"
        make_small_tree(tree, args.files)
        nix_out = run([*NIX, "hash", "path", "--type", "sha256", "--base32", str(tree)]).strip()
        assert str(nar_hash(tree).nar_hash) == f"sha256:{nix_out}", "hash mismatch with nix"
        t_nix = best(lambda: run([*NIX, "hash", "path", "--type", "sha256", "--base32", str(tree)]))
        t_cli = best(lambda: run([sys.executable, "-m", "orchestrator", "nar", "hash", str(tree)]))
        t_lib = best(lambda: nar_hash(tree))
        print(f"tree of {args.files} small files (+ dirs, symlinks):")
        print(f"  nix hash path                 {t_nix:6.3f} s")
        print(f"  orchestrator nar hash (CLI)   {t_cli:6.3f} s  = {t_cli / t_nix:.2f}x nix")
        print(f"  nar_hash in-process           {t_lib:6.3f} s  = {t_lib / t_nix:.2f}x nix")
        print(
            f"  target within 1.5x of nix: {'met' if t_cli / t_nix <= 1.5 else 'NOT met'} "
            f"(CLI), {'met' if t_lib / t_nix <= 1.5 else 'NOT met'} (in-process)"
        )


if __name__ == "__main__":
    main()
