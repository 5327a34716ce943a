"""The binary cache client on its own: NAR download and decompression (xz, bzip2, zstd, none)
from real caches written by ``nix copy``, integrity checks, and URL handling."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import pytest

from orchestrator.formats.binary_cache import BinaryCache, CacheError, decompress_file, zstd_backend
from orchestrator.formats.nar import nar_bytes, nar_hash, unpack_nar
from orchestrator.formats.narinfo import parse_narinfo
from tests.support.cache import (
    build,
    copy_to_cache,
    generate_key,
    narinfo_file,
    needs_nix,
    serve,
    unique_salt,
    write_derivations,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    tmp = tmp_path_factory.mktemp("cache-client")
    f = write_derivations(tmp)
    out = build(f, "toolA", salt=unique_salt())["out"]
    sk, _pk = generate_key(tmp, "cache-client-1")
    return tmp, out, sk


@needs_nix
@pytest.mark.parametrize("compression", ["xz", "bzip2", "zstd", "none"])
def test_fetch_nar_every_compression(built: tuple[Path, str, Path], compression: str) -> None:
    tmp, out, sk = built
    cache = tmp / f"cache-{compression}"
    if not cache.exists():
        copy_to_cache([out], cache, sk, compression=compression)
    info = parse_narinfo(narinfo_file(cache, out).read_text())
    assert info.compression == compression

    async def fetch(url: str, dest: Path) -> None:
        async with BinaryCache(url) as c:
            got = await c.narinfo(info.hash_part)
            assert got == info
            await c.fetch_nar(info, dest)

    asyncio.run(fetch(cache.as_uri(), tmp / f"{compression}.nar"))
    assert (tmp / f"{compression}.nar").read_bytes() == nar_bytes(out)
    with serve(cache) as server:
        asyncio.run(fetch(server.url, tmp / f"{compression}-http.nar"))
    assert (tmp / f"{compression}-http.nar").read_bytes() == nar_bytes(out)
    dest = tmp / f"unpacked-{compression}"
    with open(tmp / f"{compression}.nar", "rb") as fh:
        unpack_nar(fh, dest)
    assert nar_hash(dest) == nar_hash(out)


@needs_nix
def test_corrupt_nar_is_refused(built: tuple[Path, str, Path], tmp_path: Path) -> None:
    _tmp, out, sk = built
    cache = tmp_path / "cache"
    copy_to_cache([out], cache, sk, compression="none")
    info = parse_narinfo(narinfo_file(cache, out).read_text())
    nar = cache / info.url
    data = bytearray(nar.read_bytes())
    data[-20] ^= 1
    nar.write_bytes(bytes(data))
    no_filehash = info.model_copy(update={"file_hash": None})

    async def fetch(i, dest: Path) -> None:  # type: ignore[no-untyped-def]
        async with BinaryCache(cache.as_uri()) as c:
            await c.fetch_nar(i, dest)

    with pytest.raises(CacheError, match="FileHash mismatch"):
        asyncio.run(fetch(info, tmp_path / "a.nar"))
    with pytest.raises(CacheError, match="does not match its narinfo"):
        asyncio.run(fetch(no_filehash, tmp_path / "b.nar"))


def test_zstd_without_backend_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.formats.binary_cache as bc

    monkeypatch.setattr(bc, "zstd_backend", lambda: None)
    src = tmp_path / "x.zst"
    src.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(CacheError, match="zstandard"):
        decompress_file(src, "zstd", lambda b: None)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_zstd_cli_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    import orchestrator.formats.binary_cache as bc

    payload = bytes(range(256)) * 5000
    src = tmp_path / "p.zst"
    src.write_bytes(subprocess.run(["zstd", "-c"], input=payload, capture_output=True).stdout)
    monkeypatch.setattr(bc, "zstd_backend", lambda: "zstd")
    out = io.BytesIO()
    decompress_file(src, "zstd", out.write)
    assert out.getvalue() == payload
    src.write_bytes(b"garbage")
    with pytest.raises(CacheError, match="zstd -dc failed"):
        decompress_file(src, "zstd", out.write)
    assert zstd_backend() in ("zstandard", "zstd")


def test_truncated_xz_and_unknown_compression(tmp_path: Path) -> None:
    import lzma

    src = tmp_path / "t.xz"
    src.write_bytes(lzma.compress(b"x" * 100000)[:-30])
    with pytest.raises(CacheError, match="truncated|cannot decompress"):
        decompress_file(src, "xz", lambda b: None)
    with pytest.raises(CacheError, match="unsupported NAR compression"):
        decompress_file(src, "lz5", lambda b: None)


def test_bad_cache_urls() -> None:
    with pytest.raises(CacheError, match="unsupported cache URL"):
        BinaryCache("s3://bucket")


def test_not_found_is_none_and_5xx_is_retried(tmp_path: Path) -> None:
    (tmp_path / "nix-cache-info").write_text("StoreDir: /nix/store\nPriority: 40\n")

    async def go(url: str) -> tuple[object, dict[str, str]]:
        async with BinaryCache(url, retries=2, backoff=0.01) as c:
            return await c.narinfo("0" * 32), await c.cache_info()

    with serve(tmp_path, fail_first=1) as server:
        missing, cache_info = asyncio.run(go(server.url))
    assert missing is None
    assert cache_info == {"StoreDir": "/nix/store", "Priority": "40"}
    assert server.failed == {"/" + "0" * 32 + ".narinfo": 1, "/nix-cache-info": 1}


class Odd:
    """Routes that exercise the keep-alive client: chunked bodies, redirects on and off host,
    Connection: close, and a server that silently drops kept-alive connections."""

    def __init__(self, other_url: str = "") -> None:
        self.other_url = other_url

    def __call__(self, h) -> bool:  # type: ignore[no-untyped-def]
        if h.path == "/chunked.narinfo":
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for piece in (b"StorePath: ", b"chunked", b"\n"):
                h.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            h.wfile.write(b"0\r\nTrailer: x\r\n\r\n")
            return True
        if h.path == "/redirect.narinfo":
            h.send_response(302)
            h.send_header("Location", "/sub/../target.narinfo")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        if h.path == "/offhost.narinfo":
            h.send_response(301)
            h.send_header("Location", f"{self.other_url}/target.narinfo")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        if h.path in ("/target.narinfo", "/close.narinfo", "/drop.narinfo"):
            body = h.path.encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            if h.path == "/close.narinfo":
                h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            if h.path != "/target.narinfo":
                h.close_connection = True  # /drop: closes without saying so
            return True
        return False


def test_keep_alive_client_edge_cases(tmp_path: Path) -> None:
    async def go(url: str) -> list[str | None]:
        async with BinaryCache(url, retries=0) as c:
            out = []
            for name in (
                "chunked",
                "redirect",
                "offhost",
                "close",
                "target",
                "drop",
                "drop",
                "target",
            ):
                out.append(await c.narinfo_text(name))
            return out

    with serve(tmp_path, routes=Odd()) as other, serve(tmp_path, routes=Odd(other.url)) as server:
        got = asyncio.run(go(server.url))
    assert got == [
        "StorePath: chunked\n",
        "/target.narinfo",
        "/target.narinfo",  # followed to the other server through httpx
        "/close.narinfo",
        "/target.narinfo",
        "/drop.narinfo",
        "/drop.narinfo",  # the dropped connection was replaced, not counted as a failure
        "/target.narinfo",
    ]
    assert "/target.narinfo" in other.requests
