"""Benchmark: ``verify --against-hydra`` over N store paths on a loopback binary cache.

One real derivation with N outputs gives N locally built store paths; ``nix copy`` puts them in a
signed binary cache, which a separate Python process serves over HTTP/1.1 on 127.0.0.1. The
whole CLI run is timed (``nix path-info``, N narinfo requests, N signature checks, report), with
each narinfo client (``verify --http-client builtin`` and ``httpx``) in alternation, so both meet
the same machine load; medians of wall and CPU time (the CLI and its ``nix`` children) are
reported side by side.

    python bench/bench_verify.py [--paths 2000] [--jobs 16] [--client both|builtin|httpx] [--runs 3]
    python bench/bench_verify.py --clients-only [--paths 2000] [--jobs 16] [--runs 3]
    python bench/bench_verify.py --paths 1500 --latency 50 --jobs default,16,64 --client builtin

``--latency MS`` makes the server a cache that far away: every new connection waits MS before it
is served (the TCP handshake's round trip) and every answer waits MS (the request's round trip).
``--jobs`` takes a comma-separated list (``default`` runs without ``--jobs``: verify's own
default); the settings alternate run by run, so they meet the same machine load. Each run also
times the report page (``verify --html``) of that run's report, rendered in-process.

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
delay = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0  # --latency, one way and back

async def handle(reader, writer):
    try:
        if delay:
            await asyncio.sleep(delay)  # the connection's handshake
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if delay:
                await asyncio.sleep(delay)  # the request's round trip
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


def render_page(report_json: str, directory: Path) -> float:
    """Seconds to parse a report and write its page, as ``verify --html`` does."""
    from orchestrator.verify.html import write_verify_page
    from orchestrator.verify.report import Report

    t = time.perf_counter()
    write_verify_page(Report.model_validate_json(report_json), directory)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", type=int, default=2000)
    ap.add_argument(
        "--jobs", default="16", help="comma-separated --jobs values; 'default': verify's own"
    )
    ap.add_argument("--latency", type=float, default=0.0, metavar="MS", help="cache round trip")
    ap.add_argument("--client", choices=["both", "builtin", "httpx"], default="both")
    ap.add_argument("--runs", type=int, default=3, help="runs per client")
    ap.add_argument("--clients-only", action="store_true", help="time the narinfo clients alone")
    args = ap.parse_args()
    jobs_list = args.jobs.split(",")
    if args.clients_only:
        clients_only(args.paths, int(jobs_list[0]), args.runs)
        return
    clients = [
        f"{c}@{j}" if len(jobs_list) > 1 else c
        for c in (["builtin", "httpx"] if args.client == "both" else [args.client])
        for j in jobs_list
    ]
    renders: list[float] = []
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
            [sys.executable, "-c", SERVER, str(tmp / "cache"), str(args.latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            for _ in range(args.runs):
                for setting in clients:
                    client, _, jobs = setting.partition("@")
                    jobs = jobs or jobs_list[0]
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
                        *([] if jobs == "default" else ["--jobs", jobs]),
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
                    walls[setting].append(wall)
                    cpus[setting].append(cpu)
                    renders.append(render_page(proc.stdout, tmp / "page"))
                    print(
                        f"{setting:8} run: {wall:.2f} s wall, {cpu:.2f} s CPU "
                        f"({len(paths) / wall:,.0f} paths/s); its report page: "
                        f"{renders[-1]:.3f} s"
                    )
        finally:
            server.terminate()
            server.wait()
    for client in clients:
        wall, cpu = statistics.median(walls[client]), statistics.median(cpus[client])
        rate = len(paths) / wall
        line = (
            f"{client:8} median over {len(walls[client])} runs: {wall:.2f} s wall, {cpu:.2f} s CPU"
        )
        if args.latency:  # issue 19's target: 1,500 paths 50 ms away in under 5 s
            line += f" (at {args.latency:g} ms: {'under' if wall < 5 else 'NOT under'} 5 s)"
        else:
            line += f" = {rate:,.0f} paths/s (target >= 1,000 paths/s: "
            line += f"{'met' if rate >= 1000 else 'NOT met'})"
        print(line)
    print(
        f"report page of {len(paths)} paths (verify --html): median {statistics.median(renders):.3f}"
        " s (target < 2 s)"
    )
    if len(clients) > 1:
        base = statistics.median(walls[clients[0]])
        for c in clients[1:]:
            print(f"{c} / {clients[0]}: {statistics.median(walls[c]) / base:.2f}x the wall time")
    if clients == ["builtin", "httpx"]:
        b, h = (statistics.median(walls[c]) for c in clients)
        bc, hc = (statistics.median(cpus[c]) for c in clients)
        print(f"httpx / builtin: {h / b:.2f}x the wall time, {hc / bc:.2f}x the CPU time")


if __name__ == "__main__":
    main()
