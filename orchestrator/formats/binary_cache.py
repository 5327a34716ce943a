"""Client for Nix binary caches (``file://`` and ``http(s)://``).

Bounded concurrency (a semaphore and the connection pool share one limit), per-request
timeouts, and retries with exponential backoff for transient failures (connection errors,
timeouts, HTTP 5xx and 429). A missing narinfo (404, or 403 as S3 answers) is not an error: it
means the path is not in the cache. NARs are downloaded, checked against ``FileHash`` and
``NarHash``, and decompressed (xz, bzip2, zstd, none).

Small GETs (narinfo, nix-cache-info) go through ``_KeepAliveGet``, a lean HTTP/1.1 keep-alive
client on asyncio streams: httpx's async connection pool costs milliseconds of CPU per request,
which would cap a closure-wide check at a few hundred paths per second. NAR downloads (few and
large) and any configuration the lean client does not handle (proxies from the environment,
redirects to another host) use httpx.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import lzma
import os
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from orchestrator.errors import OrchestratorError
from orchestrator.formats.hashes import Hash
from orchestrator.formats.narinfo import NarInfo, parse_narinfo

DEFAULT_CACHE = "https://cache.nixos.org"
_CHUNK = 1 << 20


class CacheError(OrchestratorError):
    """The cache could not be read (after retries), or served something inconsistent."""


_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT = (
    OSError,  # refused, reset, unreachable, TLS errors
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
    ValueError,  # a garbled status line or header
)


class _OffHostRedirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _KeepAliveGet:
    """GETs of small bodies over reused HTTP/1.1 connections (at most one per concurrent
    request; the caller's semaphore bounds them)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 20),
            self.timeout,
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def get(self, rel: str) -> tuple[int, bytes]:
        path = f"{self.base}/{rel}"
        for _ in range(5):
            status, headers, body = await self._once(path)
            if status in _REDIRECTS and "location" in headers:
                target = urlsplit(
                    urljoin(f"{self.scheme}://{self.netloc}{path}", headers["location"])
                )
                if (target.scheme, target.netloc) != (self.scheme, self.netloc):
                    raise _OffHostRedirect(target.geturl())
                path = target.path + (f"?{target.query}" if target.query else "")
                continue
            return status, body
        raise ValueError(f"too many redirects for {rel}")

    async def _once(self, path: str) -> tuple[int, dict[str, str], bytes]:
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await self._connect()
        try:
            return await asyncio.wait_for(self._exchange(conn, path), self.timeout)
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn[1].close()
            if not reused or isinstance(exc, TimeoutError):
                raise
        # a kept-alive connection the server had closed: once more on a fresh one
        conn = await self._connect()
        try:
            return await asyncio.wait_for(self._exchange(conn, path), self.timeout)
        except BaseException:
            conn[1].close()
            raise

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = conn
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.netloc}\r\nUser-Agent: orchestrator-verify\r\n"
            "Accept-Encoding: identity\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, code, *_ = lines[0].split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x answer: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read()
            keep = False
        if keep:
            self.idle.append(conn)
        else:
            writer.close()
        return status, headers, body

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()


class BinaryCache:
    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 16,
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.scheme = parts.scheme
        if self.scheme not in ("file", "http", "https"):
            raise CacheError(
                f"unsupported cache URL {url!r}",
                hint="use file:///path/to/cache, http://host/ or https://host/",
            )
        self.root = Path(unquote(parts.path)) if self.scheme == "file" else None
        self.retries = max(0, retries)
        self.backoff = backoff
        self.timeout = timeout
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self._client: httpx.AsyncClient | None = None
        self._lean: _KeepAliveGet | None = None
        if (
            self.scheme != "file"
            and transport is None
            and not urllib.request.getproxies().get(self.scheme)
        ):
            self._lean = _KeepAliveGet(self.url, timeout)
        self._concurrency = max(1, concurrency)
        self._transport = transport
        # Circuit breaker: after this many requests in a row failed through all their retries,
        # the cache is taken as down and the remaining requests fail at once.
        self.give_up_after = 2 * self._concurrency
        self._failed_in_a_row = 0
        self._down: str | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The httpx client, made on first use (NAR downloads, proxies, odd redirects)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url + "/",
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(
                    max_connections=self._concurrency,
                    max_keepalive_connections=self._concurrency,
                ),
                follow_redirects=True,
                headers={"User-Agent": "orchestrator-verify"},
                transport=self._transport,
            )
        return self._client

    async def __aenter__(self) -> BinaryCache:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._lean is not None:
            self._lean.close()
        if self._client is not None:
            await self._client.aclose()

    # -- raw access ---------------------------------------------------------------------------

    async def _get(self, rel: str, *, stream_to: Path | None = None) -> bytes | None:
        """GET ``rel`` below the cache root; ``None`` when the cache does not have it."""
        if self.root is not None:
            p = self.root / rel
            try:
                if stream_to is not None:
                    await asyncio.to_thread(shutil.copyfile, p, stream_to)
                    return b""
                return await asyncio.to_thread(p.read_bytes)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise CacheError(f"cannot read {p}: {exc.strerror}") from None
        last: str = ""
        tries = 0
        for attempt in range(self.retries + 1):
            tries = attempt + 1
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                async with self._sem:
                    if self._down is not None:
                        raise CacheError(
                            f"{self.url}/{rel}: gave up, the cache stopped answering "
                            f"({self._down})",
                            hint="check the cache URL and the network; --timeout and --retries "
                            "tune patience",
                        )
                    if stream_to is None and self._lean is not None:
                        try:
                            status, body = await self._lean.get(rel)
                        except _OffHostRedirect as redirect:
                            resp = await self.client.get(redirect.location)
                            status, body = resp.status_code, resp.content
                        if status == 200:
                            self._failed_in_a_row = 0
                            return body
                    elif stream_to is None:
                        resp = await self.client.get(rel)
                        status = resp.status_code
                        if status == 200:
                            self._failed_in_a_row = 0
                            return resp.content
                    else:
                        async with self.client.stream("GET", rel) as resp:
                            status = resp.status_code
                            if status == 200:
                                with open(stream_to, "wb") as out:
                                    async for chunk in resp.aiter_bytes(_CHUNK):
                                        out.write(chunk)
                                return b""
                if status in (404, 403, 410):
                    self._failed_in_a_row = 0
                    return None
                last = f"HTTP {status}"
                if status not in (408, 425, 429) and status < 500:
                    self._failed_in_a_row = 0
                    break
            except (httpx.TransportError, *_TRANSIENT) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:  # every attempt failed: count it towards giving up on the cache
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= self.give_up_after:
                self._down = f"{self._failed_in_a_row} requests in a row failed; last: {last}"
        raise CacheError(
            f"{self.url}/{rel}: {last} (after {tries} attempt{'s' if tries > 1 else ''})",
            hint="check the cache URL and the network; --timeout and --retries tune patience",
        )

    # -- narinfo ------------------------------------------------------------------------------

    async def narinfo_text(self, hash_part: str) -> str | None:
        body = await self._get(f"{hash_part}.narinfo")
        if body is None:
            return None
        return body.decode("utf-8", errors="replace")

    async def narinfo(self, hash_part: str) -> NarInfo | None:
        text = await self.narinfo_text(hash_part)
        if text is None:
            return None
        return parse_narinfo(text, source=f"{self.url}/{hash_part}.narinfo")

    async def cache_info(self) -> dict[str, str]:
        body = await self._get("nix-cache-info")
        if body is None:
            raise CacheError(f"{self.url} has no nix-cache-info: is it a binary cache?")
        out = {}
        for line in body.decode(errors="replace").splitlines():
            k, sep, v = line.partition(":")
            if sep:
                out[k.strip()] = v.strip()
        return out

    # -- NARs ---------------------------------------------------------------------------------

    async def fetch_nar(self, info: NarInfo, dest: Path) -> None:
        """Download ``info``'s NAR, check ``FileHash``/``NarHash``/``NarSize``, and write the
        decompressed archive to ``dest``."""
        with tempfile.TemporaryDirectory(prefix="orchestrator-nar-") as tmp:
            compressed = Path(tmp) / "download"
            got = await self._get(info.url, stream_to=compressed)
            if got is None:
                raise CacheError(f"{self.url}/{info.url}: NAR missing from the cache")
            await asyncio.to_thread(_check_and_decompress, info, compressed, dest, self.url)


def _file_digest(path: Path, algo: str) -> bytes:
    h = hashlib.new(algo)
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.digest()


def _check_and_decompress(info: NarInfo, compressed: Path, dest: Path, where: str) -> None:
    if info.file_hash is not None:
        digest = _file_digest(compressed, info.file_hash.algo)
        if digest != info.file_hash.digest:
            got = Hash(algo=info.file_hash.algo, digest=digest)
            raise CacheError(
                f"{where}/{info.url}: FileHash mismatch (narinfo {info.file_hash}, got {got})"
            )
    h = hashlib.new(info.nar_hash.algo)
    size = 0
    with open(dest, "wb") as out:

        def sink(data: bytes) -> None:
            nonlocal size
            h.update(data)
            out.write(data)
            size += len(data)

        decompress_file(compressed, info.compression, sink)
    if size != info.nar_size or h.digest() != info.nar_hash.digest:
        got = Hash(algo=info.nar_hash.algo, digest=h.digest())
        raise CacheError(
            f"{where}/{info.url}: the NAR does not match its narinfo "
            f"(NarHash {info.nar_hash}, NarSize {info.nar_size}; got {got}, {size} bytes)"
        )


def zstd_backend() -> str | None:
    """``"zstandard"`` (Python package), ``"zstd"`` (CLI) or ``None``."""
    try:
        import zstandard  # noqa: F401

        return "zstandard"
    except ImportError:
        pass
    return "zstd" if shutil.which("zstd") else None


def decompress_file(
    src: str | os.PathLike[str], compression: str, sink: Callable[[bytes], object]
) -> None:
    """Stream-decompress ``src`` into ``sink``."""
    comp = compression or "bzip2"
    if comp == "zstd":
        backend = zstd_backend()
        if backend == "zstandard":
            import zstandard

            with open(src, "rb") as f:
                reader = zstandard.ZstdDecompressor().stream_reader(f)
                while chunk := reader.read(_CHUNK):
                    sink(chunk)
            return
        if backend == "zstd":
            with open(src, "rb") as f:
                proc = subprocess.Popen(
                    ["zstd", "-dc"], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                assert proc.stdout is not None
                while chunk := proc.stdout.read(_CHUNK):
                    sink(chunk)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                if proc.wait() != 0:
                    raise CacheError(f"zstd -dc failed on {src}: {err.strip()}")
            return
        raise CacheError(
            "cannot decompress a zstd NAR: neither the zstandard Python package nor the zstd "
            "command is installed",
            hint="pip install zstandard, or install the zstd package of your distribution",
        )
    if comp == "none":
        with open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                sink(chunk)
        return
    if comp == "xz":
        dec: lzma.LZMADecompressor | bz2.BZ2Decompressor = lzma.LZMADecompressor()
    elif comp == "bzip2":
        dec = bz2.BZ2Decompressor()
    else:
        raise CacheError(f"unsupported NAR compression {comp!r} (supported: xz, zstd, bzip2, none)")
    try:
        with open(src, "rb") as f:
            while chunk := f.read(_CHUNK):
                while True:  # bounded output per call keeps memory flat on huge ratios
                    out = dec.decompress(chunk, 4 * _CHUNK)
                    if out:
                        sink(out)
                    chunk = b""
                    if dec.eof or dec.needs_input:
                        break
                if dec.eof:
                    break
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise CacheError(f"cannot decompress {comp} NAR {src}: {exc}") from None
    if not dec.eof:
        raise CacheError(f"{comp} NAR {src} is truncated")
