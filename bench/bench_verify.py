"""Benchmark: ``verify --against-hydra`` over N store paths on a loopback binary cache.

One real derivation with N outputs gives N locally built store paths; ``nix copy`` puts them in a
signed binary cache, which a separate Python process serves over HTTP/1.1 on 127.0.0.1. The
whole CLI run is timed (``nix path-info``, N narinfo requests, N signature checks, report), with
each narinfo client (``verify --http-client builtin`` and ``httpx``) in alternation, so both meet
the same machine load; medians of wall and CPU time (the CLI and its ``nix`` children) are
reported side by side.

    python bench/bench_verify.py [--paths 2000] [--jobs 16] [--client both|builtin|httpx] [--runs 3]
    python bench/bench_verify.py --clients-only [--paths 2000] [--jobs 16] [--runs 3]

``--clients-only`` times the two narinfo clients alone: N GETs of small narinfo files from the
same loopback server inside one process (no Nix, no signatures), CPU time of this process.

Target: >= 1,000 paths/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.cache import build, copy_to_cache, generate_key, unique_salt, write_derivations  # noqa: E402

SERVER = r"""
# A static file server for the cache directory: asyncio, HTTP/1.1 keep-alive, 404 for missing
# files -- the shape of a real cache's front end, without a thread per connection fighting over
# the GIL (Python's threading http.server is the bottleneck long before the client is).
import asyncio, os, sys
root = os.path.realpath(sys.argv[1])

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            rel = head.split(b" ", 2)[1].decode().lstrip("/")
            path = os.path.realpath(os.path.join(root, rel))
            try:
                if not path.startswith(root + os.sep):
                    raise OSError
                with open(path, "rb") as f:
                    body = f.read()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            except OSError:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def clients_only(n: int, jobs: int, runs: int) -> None:
    from orchestrator.formats.binary_cache import BinaryCache

    cpus: dict[str, list[float]] = {"builtin": [], "httpx": []}
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp_s:
        cache = Path(tmp_s)
        hashes = [f"{i:032d}" for i in range(n)]
        for h in hashes:
            (cache / f"{h}.narinfo").write_text(
                f"StorePath: /nix/store/{h}-x\nURL: nar/x.nar\nCompression: none\n"
                f"NarHash: sha256:{'0' * 52}\nNarSize: 120\nReferences: \n"
            )
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(cache)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{int(server.stdout.readline())}"

            async def fetch_all(client: str) -> None:
                async with BinaryCache(url, concurrency=jobs, client=client) as c:  # type: ignore[arg-type]
                    got = await asyncio.gather(*(c.narinfo_text(h) for h in hashes))
                assert all(got)

            for _ in range(runs):
                for client, samples in cpus.items():
                    cpu, t = time.process_time(), time.perf_counter()
                    asyncio.run(fetch_all(client))
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - t
                    samples.append(cpu)
                    print(f"{client:8} {n} GETs: {wall:.2f} s wall, {cpu:.2f} s CPU")
        finally:
            server.terminate()
            server.wait()
    b, h = (statistics.median(cpus[c]) for c in ("builtin", "httpx"))
    print(
        f"median CPU per request: builtin {b / n * 1e6:,.0f} us, httpx {h / n * 1e6:,.0f} us "
        f"({h / b:.1f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--client", choices=["both", "builtin", "httpx"], default="both")
    ap.add_argument("--runs", type=int, default=3, help="runs per client")
    ap.add_argument("--clients-only", action="store_true", help="time the narinfo clients alone")
    args = ap.parse_args()
    if args.clients_only:
        clients_only(args.paths, args.jobs, args.runs)
        return
    clients = ["builtin", "httpx"] if args.client == "both" else [args.client]
    walls: dict[str, list[float]] = {c: [] for c in clients}
    cpus: dict[str, list[float]] = {c: [] for c in clients}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        f = write_derivations(tmp)
        paths = list(build(f, "many", salt=unique_salt(), n=str(args.paths)).values())
        sk, pk = generate_key(tmp, "bench-1")
        copy_to_cache(paths, tmp / "cache", sk, compression="none")
        print(f"setup: {len(paths)} paths built and cached in {time.perf_counter() - t0:.1f} s")
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(tmp / "cache")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            for _ in range(args.runs):
                for client in clients:
                    cmd = [
                        sys.executable,
                        "-m",
                        "orchestrator",
                        "verify",
                        "--against-hydra",
                        "--cache",
                        f"http://127.0.0.1:{port}",
                        "--http-client",
                        client,
                        "--trusted-key",
                        pk,
                        "--jobs",
                        str(args.jobs),
                        "--no-results",
                        "--json",
                        *paths,
                    ]
                    cpu = children_cpu()
                    t = time.perf_counter()
                    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
                    wall = time.perf_counter() - t
                    cpu = children_cpu() - cpu
                    report = json.loads(proc.stdout)
                    assert report["summary"]["reproducible"] == len(paths), proc.stderr[-2000:]
                    walls[client].append(wall)
                    cpus[client].append(cpu)
                    print(
                        f"{client:8} run: {wall:.2f} s wall, {cpu:.2f} s CPU "
                        f"({len(paths) / wall:,.0f} paths/s)"
                    )
        finally:
            server.terminate()
            server.wait()
    for client in clients:
        wall, cpu = statistics.median(walls[client]), statistics.median(cpus[client])
        rate = len(paths) / wall
        print(
            f"{client:8} median over {len(walls[client])} runs: {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"= {rate:,.0f} paths/s (target >= 1,000 paths/s: {'met' if rate >= 1000 else 'NOT met'})"
        )
    if len(clients) == 2:
        b, h = (statistics.median(walls[c]) for c in clients)
        bc, hc = (statistics.median(cpus[c]) for c in clients)
        print(f"httpx / builtin: {h / b:.2f}x the wall time, {hc / bc:.2f}x the CPU time")


if __name__ == "__main__":
    main()
