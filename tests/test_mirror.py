"""``distfiles mirror``: downloads from a local HTTP server on 127.0.0.1 serving files made here.

The server honours ``Range`` (206 + Content-Range) unless told not to, can cut a response short
after N bytes (an interrupted download: the connection closes mid-body), and records every
request with its Range header, so resumption is observed on the wire.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.build.distfiles import DistfileSpec
from orchestrator.build.mirror import mirror
from orchestrator.cli import main


class Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before dropping (once)
        self.honour_range = True


def _handler(state: Server):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            data = state.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng and state.honour_range and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.cut_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.wfile.write(body)

    return H


@contextlib.contextmanager
def serve(files: dict[str, bytes]) -> Iterator[tuple[Server, str]]:
    state = Server(files)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def spec(name: str, data: bytes, urls: list[str]) -> DistfileSpec:
    return DistfileSpec(filename=name, sha256=hashlib.sha256(data).hexdigest(), urls=urls)


def test_downloads_in_url_order_and_verifies(tmp_path: Path) -> None:
    a, b = os.urandom(200_000), os.urandom(1000)
    with serve({"a-1.0.tar.gz": a, "mirror/b-2.0.tar.xz": b}) as (state, base):
        specs = [
            spec("a-1.0.tar.gz", a, [f"{base}/gone/a-1.0.tar.gz", f"{base}/a-1.0.tar.gz"]),
            spec("b-2.0.tar.xz", b, [f"{base}/mirror/b-2.0.tar.xz"]),
        ]
        results = mirror(specs, tmp_path / "d")
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert results[0].url == f"{base}/a-1.0.tar.gz"
    assert [a.outcome for a in results[0].attempts] == ["http 404", "ok"]
    assert (tmp_path / "d/a-1.0.tar.gz").read_bytes() == a
    assert (tmp_path / "d/b-2.0.tar.xz").read_bytes() == b
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a-1.0.tar.gz", "b-2.0.tar.xz"]
    assert [p for p, _ in state.requests] == [
        "/gone/a-1.0.tar.gz",
        "/a-1.0.tar.gz",
        "/mirror/b-2.0.tar.xz",
    ]

    # already there with the right hash: no request at all
    with serve({}) as (state, base):
        again = mirror(specs, tmp_path / "d")
    assert [r.status for r in again] == ["present", "present"] and state.requests == []


def test_resume_after_interruption(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    half = 123_456
    with serve({"big-1.0.tar.gz": data}) as (state, base):
        state.cut_after["/big-1.0.tar.gz"] = half
        s = spec("big-1.0.tar.gz", data, [f"{base}/big-1.0.tar.gz"])
        first = mirror([s], tmp_path)
        assert first[0].status == "failed" and "error" in first[0].attempts[0].outcome
        part = tmp_path / "big-1.0.tar.gz.part"
        assert part.stat().st_size == half and not (tmp_path / "big-1.0.tar.gz").exists()

        second = mirror([s], tmp_path)
    assert second[0].status == "downloaded" and second[0].resumed_from == half
    assert state.requests[-1] == ("/big-1.0.tar.gz", f"bytes={half}-")
    assert (tmp_path / "big-1.0.tar.gz").read_bytes() == data
    assert not part.exists()


def test_server_without_range_support_starts_over(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    (tmp_path / "x-1.tar.gz.part").write_bytes(b"stale bytes that are not a prefix")
    with serve({"x-1.tar.gz": data}) as (state, base):
        state.honour_range = False
        r = mirror([spec("x-1.tar.gz", data, [f"{base}/x-1.tar.gz"])], tmp_path)
    assert r[0].status == "downloaded" and r[0].resumed_from == 0
    assert state.requests[0][1] == "bytes=33-"
    assert (tmp_path / "x-1.tar.gz").read_bytes() == data


def test_wrong_bytes_are_never_kept(tmp_path: Path) -> None:
    good = os.urandom(10_000)
    (tmp_path / "y-1.tar.gz.part").write_bytes(b"garbage")  # a bad prefix: the resume is wrong
    with serve({"y-1.tar.gz": good, "evil/y-1.tar.gz": b"tampered"}) as (_state, base):
        s = spec("y-1.tar.gz", good, [f"{base}/evil/y-1.tar.gz", f"{base}/y-1.tar.gz"])
        r = mirror([s], tmp_path)
    outcomes = [a.outcome.split(" (")[0] for a in r[0].attempts]
    # evil: resumed from the garbage (mismatch), then fresh (mismatch); then the good mirror
    assert outcomes == ["sha256 mismatch", "sha256 mismatch", "ok"]
    assert (tmp_path / "y-1.tar.gz").read_bytes() == good

    with serve({"z-1.tar.gz": b"tampered"}) as (_state, base):
        r = mirror([spec("z-1.tar.gz", good, [f"{base}/z-1.tar.gz"])], tmp_path)
    assert r[0].status == "failed"
    assert not (tmp_path / "z-1.tar.gz").exists() and not (tmp_path / "z-1.tar.gz.part").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(4096)
    with serve({"c-1.tar.gz": data}) as (_state, base):
        listing = tmp_path / "list.json"
        listing.write_text(
            json.dumps(
                [
                    {
                        "filename": "c-1.tar.gz",
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "urls": [f"{base}/c-1.tar.gz"],
                    },
                    {
                        "filename": "g-1.tar.gz",
                        "sha256": "0" * 64,
                        "urls": [],
                        "git": {"repo": "https://example.org/g.git", "ref": "abc"},
                    },
                ]
            )
        )
        rc = main(["distfiles", "mirror", str(tmp_path / "m"), "--list", str(listing), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1, "a git-only distfile cannot be mirrored over HTTP"
    assert out["counts"] == {"downloaded": 1, "no-url": 1}
    assert (tmp_path / "m/c-1.tar.gz").read_bytes() == data

    rc = main(["distfiles", "mirror", str(tmp_path / "m"), "--list", str(listing)])
    cap = capsys.readouterr()
    assert rc == 1 and "mirror.sh" in cap.out and "distfiles seed" in cap.err
