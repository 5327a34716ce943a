"""Hostile and broken HTTP servers against both clients (binary cache and Hydra).

Every server here is bound to 127.0.0.1 inside the test, and every loop in it is bounded in
count and time and stops by itself. ``RawServer`` speaks raw TCP, for answers no well-behaved
HTTP server gives: a 2 GB ``Content-Length`` then a close, a close-delimited body of 1 GB, no
answer at all, a status line that is not HTTP. Each binary-cache case runs with the built-in
keep-alive client and with httpx (``client="httpx"``, the path proxies take).
"""

from __future__ import annotations

import asyncio
import http.server
import lzma
import os
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.formats.binary_cache import (
    NARINFO_MAX,
    BinaryCache,
    CacheError,
    GiveUp,
    nar_download_limit,
    proxy_for,
)
from orchestrator.formats.hashes import Hash
from orchestrator.formats.narinfo import parse_narinfo
from orchestrator.formats.retry import parse_retry_after
from orchestrator.verify.hydra import HydraClient, HydraError
from tests.support.cache import serve

CLIENTS = ["builtin", "httpx"]
HASH = "0" * 32
PROXY_VARS = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUEST_METHOD",
)


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the machine running the tests has set, these tests set proxies themselves."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


class RawServer:
    """TCP on 127.0.0.1; ``handle(conn, server)`` writes whatever answer a case needs.

    Records connections, request heads, bytes sent and connections the client closed."""

    def __init__(self, handle: Callable[[socket.socket, RawServer], None]) -> None:
        self.handle = handle
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.closed_by_client = 0
        self.requests: list[bytes] = []
        self.sent = 0
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            self.handle(conn, self)
        except OSError:
            pass
        finally:
            conn.close()

    def read_head(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        with self.lock:
            self.requests.append(data)
        return data

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)

    def wait_for_close(self, conn: socket.socket) -> None:
        """Block until the client closes the connection (or the server stops)."""
        conn.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                if conn.recv(4096) == b"":
                    with self.lock:
                        self.closed_by_client += 1
                    return
            except TimeoutError:
                continue

    def stop(self) -> None:
        self.stopping.set()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()


@contextmanager
def raw_server(handle: Callable[[socket.socket, RawServer], None]) -> Iterator[RawServer]:
    server = RawServer(handle)
    server.acceptor.start()
    try:
        yield server
    finally:
        server.stop()


def fetch_narinfo(url: str, client: str, **kw: float) -> str | None:
    async def go() -> str | None:
        async with BinaryCache(url, client=client, **kw) as cache:  # type: ignore[arg-type]
            return await cache.narinfo_text(HASH)

    return asyncio.run(go())


# --------------------------------------------------------------------------------------------
# Bounded bodies


@pytest.mark.parametrize("client", CLIENTS)
def test_huge_content_length_then_close_is_refused_unread(client: str) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\nStorePath: /ni")

    with raw_server(handle) as server:
        with pytest.raises(CacheError, match="Content-Length 2000000000 exceeds the limit"):
            fetch_narinfo(server.url, client, retries=3, backoff=0.01)
    assert len(server.requests) == 1  # an answer, not a transient failure: not retried


@pytest.mark.parametrize("client", CLIENTS)
def test_close_delimited_gigabyte_is_cut_at_the_bound(client: str) -> None:
    block = b"x" * (1 << 20)

    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(1024):  # 1 GiB at most; stops as soon as the client hangs up
            server.send(conn, block)

    with raw_server(handle) as server:
        tracemalloc.start()
        try:
            with pytest.raises(CacheError, match=f"exceeds the limit of {NARINFO_MAX} bytes"):
                fetch_narinfo(server.url, client, retries=0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak} bytes: the body was not cut at the bound"
    # the client hung up at the bound: what the server got out is that plus socket buffers
    assert server.sent < 64 << 20


@pytest.mark.parametrize("client", CLIENTS)
def test_chunked_body_over_the_bound_is_refused(client: str) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64):
            server.send(conn, b"%x\r\n%s\r\n" % (1 << 18, b"y" * (1 << 18)))
        server.send(conn, b"0\r\n\r\n")

    with raw_server(handle) as server, pytest.raises(CacheError, match="exceeds the limit"):
        fetch_narinfo(server.url, client, retries=0)


def _nar_route(body: Callable[[http.server.BaseHTTPRequestHandler], None]):  # type: ignore[no-untyped-def]
    def routes(h: http.server.BaseHTTPRequestHandler) -> bool:
        if h.path == "/nar/big.nar":
            body(h)
            return True
        return False

    return routes


def narinfo_for(nar: bytes, *, compression: str = "none", file_size: int | None = None) -> str:
    text = (
        f"StorePath: /nix/store/{HASH}-x\nURL: nar/big.nar\nCompression: {compression}\n"
        f"NarHash: {Hash.of_bytes(nar)}\nNarSize: {len(nar)}\nReferences: \n"
    )
    if file_size is not None:
        text += f"FileSize: {file_size}\n"
    return text


def test_nar_download_stops_at_file_size(tmp_path: Path) -> None:
    """The narinfo says 124 bytes; the server sends a close-delimited stream of up to 1 GiB."""
    sent = 0

    def body(h: http.server.BaseHTTPRequestHandler) -> None:
        nonlocal sent
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(1024):
            h.wfile.write(b"z" * (1 << 20))
            sent += 1 << 20
        h.close_connection = True

    info = parse_narinfo(narinfo_for(b"n" * 124, file_size=124))
    assert nar_download_limit(info) == 124
    dest = tmp_path / "out.nar"

    async def go(url: str) -> None:
        async with BinaryCache(url, retries=0) as cache:
            await cache.fetch_nar(info, dest)

    with serve(routes=_nar_route(body)) as server:
        with pytest.raises(CacheError, match="exceeds the limit of 124 bytes"):
            asyncio.run(go(server.url))
    assert not dest.exists()
    assert sent < 64 << 20


def test_nar_content_length_over_file_size_is_refused_before_reading(tmp_path: Path) -> None:
    def body(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(2_000_000_000))
        h.end_headers()
        h.wfile.write(b"z" * 1000)
        h.close_connection = True

    info = parse_narinfo(narinfo_for(b"n" * 124, file_size=124))

    async def go(url: str) -> None:
        async with BinaryCache(url, retries=2, backoff=0.01) as cache:
            await cache.fetch_nar(info, tmp_path / "out.nar")

    with serve(routes=_nar_route(body)) as server:
        with pytest.raises(CacheError, match="Content-Length 2000000000 exceeds the limit of 124"):
            asyncio.run(go(server.url))
    assert server.requests == ["/nar/big.nar"]


def test_file_size_beyond_what_nar_size_allows_is_refused() -> None:
    info = parse_narinfo(narinfo_for(b"n" * 124, compression="xz", file_size=10 << 30))
    with pytest.raises(CacheError, match="FileSize 10737418240 is more than"):
        nar_download_limit(info)
    # without FileSize, the signed NarSize bounds the download
    assert nar_download_limit(parse_narinfo(narinfo_for(b"n" * 124, compression="xz"))) < 1 << 17


def test_decompression_stops_at_nar_size(tmp_path: Path) -> None:
    """A small xz file that inflates to 64 MiB, under a narinfo whose NarSize is 124."""
    bomb = lzma.compress(b"\0" * (64 << 20))
    (tmp_path / "nar").mkdir()
    (tmp_path / "nar" / "big.nar").write_bytes(bomb)
    info = parse_narinfo(narinfo_for(b"n" * 124, compression="xz"))
    info = info.model_copy(update={"file_size": len(bomb)})
    # FileSize is plausible for the signed NarSize only if the bomb is small: it is
    assert nar_download_limit(info) == len(bomb)
    dest = tmp_path / "out.nar"

    async def go() -> None:
        async with BinaryCache(tmp_path.as_uri()) as cache:
            await cache.fetch_nar(info, dest)

    with pytest.raises(CacheError, match="decompresses to more than its NarSize 124"):
        asyncio.run(go())
    assert not dest.exists()


# --------------------------------------------------------------------------------------------
# Connections


def test_garbled_first_answer_does_not_leak_the_connection() -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, b"SPDY/9 nonsense\r\n\r\n")
        server.wait_for_close(conn)

    async def go(url: str) -> None:
        async with BinaryCache(url, retries=2, backoff=0.01) as cache:
            with pytest.raises(CacheError, match="not an HTTP/1.x answer") as excinfo:
                await cache.narinfo_text(HASH)
            # while the error (and its traceback's frames) is alive, every socket is closed
            deadline = time.monotonic() + 5
            while server.closed_by_client < server.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert "after 3 attempts" in str(excinfo.value)

    with raw_server(handle) as server:
        asyncio.run(go(server.url))
        assert server.connections == 3
        assert server.closed_by_client == 3


@pytest.mark.parametrize("client", CLIENTS)
def test_a_cache_that_never_answers_is_given_up_on(client: str) -> None:
    """41 narinfos (a closure), 4 at a time, 3 retries each: without giving up that is 164
    attempts of a full timeout each. The cache is taken as down after 2 x 4 failed attempts in
    a row, and every path says so."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.wait_for_close(conn)  # never answers

    async def go(url: str) -> list[BaseException | str | None]:
        async with BinaryCache(
            url,
            client=client,  # type: ignore[arg-type]
            concurrency=4,
            timeout=0.5,
            retries=3,
            backoff=0.01,
        ) as cache:
            hashes = [f"{i:032d}" for i in range(41)]
            return await asyncio.gather(
                *(cache.narinfo_text(h) for h in hashes), return_exceptions=True
            )

    with raw_server(handle) as server:
        got = asyncio.run(go(server.url))
    assert all(isinstance(r, CacheError) for r in got), got
    reasons = [str(r) for r in got]
    assert all("gave up, the cache stopped answering" in r for r in reasons), reasons
    assert all(re.search(r"\d+ attempts in a row failed|no answer for \d+ s", r) for r in reasons)
    # at most the attempts that gave up plus those already in flight: nowhere near 164
    assert len(server.requests) <= 12


# --------------------------------------------------------------------------------------------
# Retry-After


def test_retry_after_values() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class Throttle:
    """Answers 429 with ``Retry-After: 1`` to the first request for each path, then serves."""

    def __init__(self, body: bytes, content_type: str = "text/x-nix-narinfo") -> None:
        self.body = body
        self.content_type = content_type
        self.seen: dict[str, list[float]] = {}

    def __call__(self, h: http.server.BaseHTTPRequestHandler) -> bool:
        times = self.seen.setdefault(h.path, [])
        times.append(time.monotonic())
        if len(times) == 1:
            h.send_response(429)
            h.send_header("Retry-After", "1")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        h.send_header("Content-Length", str(len(self.body)))
        h.end_headers()
        h.wfile.write(self.body)
        return True


@pytest.mark.parametrize("client", CLIENTS)
def test_binary_cache_honours_retry_after(client: str) -> None:
    throttle = Throttle(b"StorePath: /nix/store/" + HASH.encode() + b"-x\n")
    with serve(routes=throttle) as server:
        # the backoff alone would wait ~10 ms: a gap of a second is the server's Retry-After
        text = fetch_narinfo(server.url, client, retries=3, backoff=0.01)
    assert text is not None and text.startswith("StorePath:")
    (times,) = throttle.seen.values()
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95


def test_hydra_honours_retry_after() -> None:
    throttle = Throttle(b'{"id": 7, "finished": 1, "buildstatus": 0}', "application/json")
    with serve(routes=throttle) as server, HydraClient(server.url, backoff=0.01) as hydra:
        build = hydra.build(7)
    assert build.id == 7 and build.succeeded
    times = throttle.seen["/build/7"]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95


def test_hydra_backs_off_between_failures() -> None:
    """503s without Retry-After: retried with growing waits, then a clear error."""
    seen: list[float] = []

    def routes(h: http.server.BaseHTTPRequestHandler) -> bool:
        seen.append(time.monotonic())
        h.send_error(503, "busy")
        return True

    with serve(routes=routes) as server, HydraClient(server.url, retries=2, backoff=0.2) as h:
        with pytest.raises(HydraError, match=r"HTTP 503 \(after 3 attempts\)"):
            h.build(1)
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.1 and seen[2] - seen[1] >= 0.2  # base x jitter >= 0.5


# --------------------------------------------------------------------------------------------
# Proxies


class RecordingProxy:
    """A forward HTTP proxy on 127.0.0.1 that records each request line and answers it itself
    (the origin behind it need not exist: an answer proves the request went through here)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.lines: list[str] = []

    def __call__(self, conn: socket.socket, server: RawServer) -> None:
        head = server.read_head(conn)
        if not head:
            return
        self.lines.append(head.split(b"\r\n", 1)[0].decode())
        server.send(
            conn,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(self.body), self.body),
        )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("var", ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
def test_proxy_from_the_environment_is_used(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RecordingProxy(b'{"id": 3, "finished": 1, "buildstatus": 0}')
    origin = f"http://127.0.0.1:{closed_port()}"  # nothing listens there
    with raw_server(proxy) as server:
        monkeypatch.setenv(var, server.url)
        assert proxy_for(origin) == server.url
        text = fetch_narinfo(origin, "builtin", retries=0)
        with HydraClient(origin, retries=0) as hydra:
            build = hydra.build(3)
    assert text is not None and build.id == 3
    assert proxy.lines == [
        f"GET {origin}/{HASH}.narinfo HTTP/1.1",
        f"GET {origin}/build/3 HTTP/1.1",
    ]


@pytest.mark.parametrize("var", ["no_proxy", "NO_PROXY"])
def test_no_proxy_bypasses_the_proxy(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RecordingProxy(b"from the proxy")
    body = b'{"id": 5, "finished": 1, "buildstatus": 0}'

    def routes(h: http.server.BaseHTTPRequestHandler) -> bool:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return True

    with raw_server(proxy) as proxy_server, serve(routes=routes) as origin:
        monkeypatch.setenv("HTTP_PROXY", proxy_server.url)
        monkeypatch.setenv("ALL_PROXY", proxy_server.url)
        monkeypatch.setenv(var, "127.0.0.1")
        assert proxy_for(origin.url) is None
        text = fetch_narinfo(origin.url, "builtin", retries=0)
        with HydraClient(origin.url, retries=0) as hydra:
            build = hydra.build(5)
    assert text == body.decode() and build.id == 5
    assert proxy.lines == []
    assert origin.requests == [f"/{HASH}.narinfo", "/build/5"]


def test_unusable_proxy_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "gopher://127.0.0.1:1")
    with pytest.raises(CacheError, match="through the proxy the environment names"):
        fetch_narinfo("http://127.0.0.1:1", "builtin", retries=0)
    with pytest.raises(HydraError, match="through the proxy the environment names"):
        HydraClient("http://127.0.0.1:1")


def test_nar_limit_allows_what_xz_really_produces() -> None:
    """Incompressible bytes grow under xz, but by far less than the sixteenth allowed."""
    raw = os.urandom(1 << 20)
    packed = lzma.compress(raw)
    assert len(packed) > len(raw)
    info = parse_narinfo(narinfo_for(raw, compression="xz", file_size=len(packed)))
    assert nar_download_limit(info) == len(packed)


@pytest.mark.parametrize("url", ["../../etc/passwd", "/etc/passwd", "http://elsewhere/x.nar", ""])
def test_nar_url_must_stay_inside_the_cache(url: str, tmp_path: Path) -> None:
    info = parse_narinfo(narinfo_for(b"n" * 124)).model_copy(update={"url": url})

    async def go() -> None:
        async with BinaryCache(tmp_path.as_uri()) as cache:
            await cache.fetch_nar(info, tmp_path / "out.nar")

    with pytest.raises(CacheError, match="is not a path inside the cache"):
        asyncio.run(go())


def test_give_up_rules() -> None:
    """Either rule takes the cache as down; any answer resets both."""
    by_count = GiveUp(max_failures=3, patience=3600)
    by_count.failed("refused", time.monotonic())
    by_count.failed("refused", time.monotonic())
    by_count.answered()  # a 404 or a 200 in between: the count starts again
    by_count.failed("refused", time.monotonic())
    by_count.failed("refused", time.monotonic())
    assert by_count.down is None
    by_count.failed("refused", time.monotonic())
    assert by_count.down == "3 attempts in a row failed; last: refused"

    by_time = GiveUp(max_failures=1000, patience=5)
    by_time.last_answer -= 10  # the run began 10 s ago, nothing answered since
    by_time.failed("TimeoutError", time.monotonic())  # one timed-out attempt: retried
    assert by_time.down is None
    by_time.failed("TimeoutError", time.monotonic() - 6)  # began 6 s ago, nothing answered since
    assert by_time.down is not None and by_time.down.startswith("no answer for 6 s")
