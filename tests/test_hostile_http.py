"""The HTTP clients fail closed and stay bounded against answers no HTTP server should give, and
credentials in a cache URL are sent as basic auth and never shown. Servers on 127.0.0.1 only
(``RawServer`` of test_http_faults.py), each loop bounded, stopping by itself."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.binary_cache import NARINFO_MAX, BinaryCache, CacheError
from orchestrator.formats.url_credentials import redact, split_url
from orchestrator.verify.hydra import HydraClient, HydraError
from tests.helpers_cache import World, needs_nix, serve
from tests.test_http_faults import CLIENTS, HASH, RawServer, fetch_narinfo, raw_server

MALFORMED = {
    "negative chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc",
    "chunk size 0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n" + b"a" * 16,
    # \xb2 is '²' in latin-1, how HTTP headers are decoded: str.isdigit() says yes, int() no
    "superscript Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab",
    "superscript status": b"HTTP/1.1 \xb200 OK\r\nContent-Length: 0\r\n\r\n",
    "Content-Length with sign": b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
    "non-UTF-8 status line": b"HTTP/1.1 2\xff0 OK\r\nContent-Length: 0\r\n\r\n",
}


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_answer_is_a_protocol_error(client: str, case: str) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, MALFORMED[case])

    with raw_server(handle) as server:
        with pytest.raises(CacheError, match=r"after 2 attempts") as excinfo:
            fetch_narinfo(server.url, client, retries=1, backoff=0.01, timeout=2)
    assert "Traceback" not in str(excinfo.value)
    assert len(server.requests) == 2  # retried as a failed attempt, then reported


def test_malformed_hydra_answer_is_a_clear_error() -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, MALFORMED["negative chunk size"])

    with raw_server(handle) as server, HydraClient(server.url, retries=0, timeout=2) as client:
        with pytest.raises(HydraError):
            client.build(1)


def _trickle(conn: socket.socket, server: RawServer) -> None:
    server.read_head(conn)
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
    for _ in range(200):  # one byte every 0.2 s: 40 s in all, each read well within the timeout
        if server.stopping.is_set():
            return
        server.send(conn, b"x")
        time.sleep(0.2)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_trickling_server_meets_one_deadline(client: str) -> None:
    with raw_server(_trickle) as server:
        started = time.monotonic()
        with pytest.raises(CacheError, match="no complete answer within"):
            fetch_narinfo(server.url, client, retries=0, timeout=1)
        took = time.monotonic() - started
    # --timeout plus NARINFO_MAX at the minimum rate (4 s): nowhere near the 40 s it trickles
    assert took < 1 + 4 + 3, took


def test_hydra_trickle_meets_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HydraClient, "JSON_MAX", 256 << 10)  # deadline: timeout + 1 s
    with raw_server(_trickle) as server, HydraClient(server.url, retries=0, timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(HydraError, match="no complete answer within"):
            client.build(1)
        assert time.monotonic() - started < 6


def _read_from(cache: Path) -> str | None:
    async def go() -> str | None:
        async with BinaryCache(cache.as_uri(), timeout=2) as c:
            return await c.narinfo_text(HASH)

    return asyncio.run(go())


def test_file_cache_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / f"{HASH}.narinfo"
    os.mkfifo(fifo)

    def unblock() -> None:  # so that a client that waits on the FIFO fails the test, not hangs
        time.sleep(5)
        # ENXIO when nobody is reading: then nobody waits on it either
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(CacheError, match="not a regular file"):
        _read_from(tmp_path)
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "."])
def test_file_cache_refuses_devices_and_directories(tmp_path: Path, special: str) -> None:
    (tmp_path / f"{HASH}.narinfo").symlink_to(special if special != "." else tmp_path)
    with pytest.raises(CacheError, match="not a regular file"):
        _read_from(tmp_path)


def test_file_cache_bounds_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / f"{HASH}.narinfo").write_bytes(b"x" * (NARINFO_MAX + 1))
    with pytest.raises(CacheError, match="more than the"):
        _read_from(tmp_path)


def test_url_credentials_split_and_redacted() -> None:
    got = split_url("http://alice:s%40cret@127.0.0.1:8080/cache")
    assert got.bare == "http://127.0.0.1:8080/cache"
    assert got.shown == "http://alice:***@127.0.0.1:8080/cache"
    assert got.auth == ("alice", "s@cret")
    assert split_url("https://cache.example/").auth is None
    assert redact("http://bob:pw@h/x") == "http://bob:***@h/x"
    assert redact("file:///srv/cache") == "file:///srv/cache"
    assert redact("http://[::1]:99999") == "http://[::1]:99999"


@pytest.mark.parametrize("client", CLIENTS)
def test_credentials_are_basic_auth_not_host(client: str) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    with raw_server(handle) as server:
        url = server.url.replace("http://", "http://alice:hunter2@")
        with pytest.raises(CacheError) as excinfo:
            fetch_narinfo(url, client, retries=0)
    head = server.requests[0].decode("latin-1").lower()
    token = base64.b64encode(b"alice:hunter2").decode().lower()
    assert f"authorization: basic {token}" in head
    assert "host: 127.0.0.1:" in head and "hunter2" not in head.replace(token, "")
    assert "hunter2" not in str(excinfo.value) and "alice:***@" in str(excinfo.value)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from tests.helpers_cache import copy_to_cache

    w = World(tmp_path_factory.mktemp("hostile-http"), n_many=1)
    copy_to_cache([w.tool_a], w.cache, w.secret)
    return w


@needs_nix
def test_credentials_never_in_any_output(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "run.jsonl"
    with serve(world.cache) as cache:
        url = cache.url.replace("http://", "http://alice:hunter2@")
        code = main(
            [
                "verify",
                "--against-hydra",
                "--cache",
                url,
                "--trusted-key",
                world.public,
                "--results",
                str(results),
                "--json",
                world.tool_a,
            ]
        )
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["summary"]["reproducible"] == 1 and code == 0
    for text in (out, err, results.read_text()):
        assert "hunter2" not in text
    assert report["cache"].startswith("http://alice:***@127.0.0.1:")


@needs_nix
@pytest.mark.parametrize("client", CLIENTS)
def test_a_malformed_answer_is_an_error_for_its_path_not_the_run(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], client: str
) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        server.read_head(conn)
        server.send(conn, MALFORMED["negative chunk size"])

    results = tmp_path / "run.jsonl"
    with raw_server(handle) as server:
        code = main(
            [
                "verify",
                "--against-hydra",
                "--cache",
                server.url,
                "--http-client",
                client,
                "--retries",
                "0",
                "--trusted-key",
                world.public,
                "--results",
                str(results),
                "--json",
                world.tool_a,
            ]
        )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    report = json.loads(out)  # the JSON report is there
    assert [r["status"] for r in report["results"]] == ["error"]
    assert code == 2 and report["complete"]
    assert len(results.read_text().splitlines()) >= 3  # start, the result, the end
