"""Client for Nix binary caches (``file://`` and ``http(s)://``).

Bounded concurrency (a semaphore and the connection pool share one limit), per-request
timeouts, and the project's retry policy (``retry.py``: exponential backoff with jitter,
``Retry-After`` honoured) for transient failures. A missing narinfo (404, or 403 as S3 answers)
is not an error: it means the path is not in the cache. NARs are downloaded, checked against
``FileHash`` and ``NarHash``, and decompressed (xz, bzip2, zstd, none).

Every body is bounded before it is read: a narinfo by ``NARINFO_MAX``, a NAR by its narinfo's
``FileSize`` (and what the signed ``NarSize`` allows), so a hostile or broken server cannot make
the client allocate or write more than that.

A cache that stops answering is given up on (``GiveUp``): the remaining paths fail at once
instead of each waiting through its own retries, so a dead cache ends a run of any size in a
bounded time.

Small GETs (narinfo, nix-cache-info) go through ``_KeepAliveGet``, a lean HTTP/1.1 keep-alive
client on asyncio streams: on loopback it needs a tenth of the CPU time per request that httpx's
async pool does (numbers in docs/verify.md), which would otherwise cap a closure-wide check at a
few hundred paths per second. NAR downloads (few and large), a cache reached through a proxy
named by the environment, redirects to another host, and ``client="httpx"`` use httpx.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import lzma
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal, Self
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from orchestrator.errors import OrchestratorError
from orchestrator.formats.hashes import Hash
from orchestrator.formats.narinfo import NarInfo, parse_narinfo
from orchestrator.formats.retry import (
    TransientError,
    async_retrying,
    is_transient_status,
    parse_retry_after,
)
from orchestrator.formats.url_credentials import basic_auth_header, split_url

DEFAULT_CACHE = "https://cache.nixos.org"
_CHUNK = 1 << 20

# The largest narinfo accepted. A narinfo is a few hundred bytes plus ~60 per direct reference;
# 1 MiB leaves room for environments with thousands of references (TeX Live's), and is what a
# broken or hostile server can make each concurrent request hold at most.
NARINFO_MAX = 1 << 20
CACHE_INFO_MAX = 64 << 10
_HEADERS_MAX = 64 << 10
# One deadline per request, both clients and file:// caches: --timeout, plus the time the
# largest body the request may bring takes at this rate -- so a server that trickles a byte
# every few seconds (each read within --timeout) still ends within a bound.
MIN_RATE = 256 << 10  # bytes per second

# HTTP's own grammar, in ASCII: Python's int() also takes "١٢", "1_0", "-5", "0x1f" and " 7"
_STATUS_LINE = re.compile(r"(HTTP/1\.[01]) ([0-9]{3})(?: .*)?")
_DECIMAL = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


def request_deadline(timeout: float, limit: int) -> float:
    """Seconds one request may take in all (connect, redirects, headers, body)."""
    return timeout + limit / MIN_RATE


HttpClient = Literal["builtin", "httpx"]


class CacheError(OrchestratorError):
    """The cache could not be read (after retries), or served something inconsistent."""


class _TooLarge(Exception):
    """The answer is larger than the caller accepts (an answer, not a transient failure)."""


class _ProtocolError(Exception):
    """Not a readable HTTP/1.x answer."""


_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT = (
    OSError,  # refused, reset, unreachable, TLS errors, timeouts
    asyncio.IncompleteReadError,  # closed before the promised body
    _ProtocolError,
    httpx.TransportError,
)


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``: ``<scheme>_proxy``, else ``all_proxy`` (in
    either case), unless ``no_proxy`` exempts the host. httpx reads the same variables."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


class GiveUp:
    """When to stop asking a cache that stopped answering.

    The cache is taken as down when ``max_failures`` attempts in a row failed, or when attempts
    kept failing for ``patience`` seconds (from the start of the first failed attempt since the
    last answer) with none answered. Any HTTP answer that is not transient resets both."""

    def __init__(self, max_failures: int, patience: float) -> None:
        self.max_failures = max(1, max_failures)
        self.patience = patience
        self.failures = 0
        self.failing_since: float | None = None
        self.last_answer = time.monotonic()
        self.down: str | None = None

    def answered(self) -> None:
        self.failures = 0
        self.failing_since = None
        self.last_answer = time.monotonic()

    def failed(self, why: str, started: float) -> None:
        if self.down is not None:
            return
        now = time.monotonic()
        self.failures += 1
        since = max(started, self.last_answer)
        if self.failing_since is None or since < self.failing_since:
            self.failing_since = since
        if self.failures >= self.max_failures:
            self.down = f"{self.failures} attempts in a row failed; last: {why}"
        elif now - self.failing_since >= self.patience:
            self.down = f"no answer for {now - self.failing_since:.0f} s; last: {why}"


class _OffHostRedirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _KeepAliveGet:
    """GETs of small bodies over reused HTTP/1.1 connections (at most one per concurrent
    request; the caller's semaphore bounds them). Every connection that is not put back for
    reuse is closed, whatever went wrong."""

    def __init__(self, url: str, timeout: float, auth: tuple[str, str] | None = None) -> None:
        parts = urlsplit(url)  # without user info: the netloc is what Host says
        self.auth = basic_auth_header(auth) if auth is not None else None
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=_HEADERS_MAX),
            self.timeout,
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def get(self, rel: str, limit: int) -> tuple[int, Mapping[str, str], bytes]:
        path = f"{self.base}/{rel}"
        for _ in range(5):
            status, headers, body = await self._once(path, limit)
            if status in _REDIRECTS and "location" in headers:
                target = urlsplit(
                    urljoin(f"{self.scheme}://{self.netloc}{path}", headers["location"])
                )
                if (target.scheme, target.netloc) != (self.scheme, self.netloc):
                    raise _OffHostRedirect(target.geturl())
                path = target.path + (f"?{target.query}" if target.query else "")
                continue
            return status, headers, body
        raise _ProtocolError(f"too many redirects for {rel}")

    async def _once(self, path: str, limit: int) -> tuple[int, dict[str, str], bytes]:
        if self.idle:
            try:
                return await self._exchange_or_close(self.idle.pop(), path, limit)
            except (OSError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, TimeoutError):
                    raise
                # a kept-alive connection the server had closed: once more on a fresh one
        return await self._exchange_or_close(await self._connect(), path, limit)

    async def _exchange_or_close(
        self, conn: _Conn, path: str, limit: int
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            status, headers, body, keep = await asyncio.wait_for(
                self._exchange(conn, path, limit), self.timeout
            )
        except BaseException:
            conn[1].close()
            raise
        if keep:
            self.idle.append(conn)
        else:
            conn[1].close()
        return status, headers, body

    async def _exchange(
        self, conn: _Conn, path: str, limit: int
    ) -> tuple[int, dict[str, str], bytes, bool]:
        reader, writer = conn
        auth = f"Authorization: {self.auth}\r\n" if self.auth else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.netloc}\r\nUser-Agent: orchestrator-verify\r\n"
            f"{auth}Accept-Encoding: identity\r\n\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _ProtocolError(f"answer headers longer than {_HEADERS_MAX} bytes") from None
        lines = head.decode("latin-1").split("\r\n")
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise _ProtocolError(f"not an HTTP/1.x answer: {lines[0][:60]!r}")
        version, status = m.group(1), int(m.group(2))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader, limit)
        elif "content-length" in headers:
            length = headers["content-length"]
            if not _DECIMAL.fullmatch(length):
                raise _ProtocolError(f"bad Content-Length {length[:30]!r}")
            if int(length) > limit:
                raise _TooLarge(f"Content-Length {int(length)} exceeds the limit of {limit} bytes")
            body = await reader.readexactly(int(length))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # delimited by the end of the connection
            body = await _read_to_eof(reader, limit)
            keep = False
        return status, headers, body, keep

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip(b" \t\r\n")
        if not _CHUNK_SIZE.fullmatch(line):
            raise _ProtocolError(f"bad chunk size {line[:30]!r}")
        size = int(line, 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > limit:
            raise _TooLarge(f"chunked body exceeds the limit of {limit} bytes")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _read_to_eof(reader: asyncio.StreamReader, limit: int) -> bytes:
    buf = bytearray()
    while chunk := await reader.read(min(_CHUNK, limit + 1 - len(buf))):
        buf += chunk
        if len(buf) > limit:
            raise _TooLarge(f"body exceeds the limit of {limit} bytes")
    return bytes(buf)


def nar_download_limit(info: NarInfo) -> int:
    """The most bytes a NAR download for ``info`` may bring: its ``FileSize``, never more than the
    signed ``NarSize`` allows (no compressor Nix uses grows its input by a sixteenth)."""
    if info.compression == "none":
        cap = info.nar_size
    else:
        cap = info.nar_size + info.nar_size // 16 + (64 << 10)
    if info.file_size is None:
        return cap
    if info.file_size > cap:
        raise CacheError(
            f"narinfo of {info.store_path}: FileSize {info.file_size} is more than a "
            f"{info.compression} NAR of NarSize {info.nar_size} can be"
        )
    return info.file_size


class BinaryCache:
    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 16,
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 0.25,
        client: HttpClient = "builtin",
    ) -> None:
        where = split_url(url.rstrip("/"))
        self.url = where.shown  # every message, log and result shows this: no password
        self._bare, self._auth = where.bare, where.auth
        parts = urlsplit(self._bare)
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
        self._concurrency = max(1, concurrency)
        self._sem = asyncio.Semaphore(self._concurrency)
        self._client: httpx.AsyncClient | None = None
        self._lean: _KeepAliveGet | None = None
        if self.scheme != "file" and client == "builtin" and proxy_for(self._bare) is None:
            self._lean = _KeepAliveGet(self._bare, timeout, self._auth)
        # 2 x --jobs failed attempts in a row, or 2 x --timeout without an answer: the cache is
        # down. Twice the timeout, so that one timed-out round of requests is still retried.
        self.give_up = GiveUp(2 * self._concurrency, 2 * timeout)

    @property
    def client(self) -> httpx.AsyncClient:
        """The httpx client, made on first use (NAR downloads, proxies, odd redirects)."""
        if self._client is None:
            try:
                self._client = httpx.AsyncClient(
                    base_url=self._bare + "/",
                    auth=httpx.BasicAuth(*self._auth) if self._auth is not None else None,
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=self._concurrency,
                        max_keepalive_connections=self._concurrency,
                    ),
                    follow_redirects=True,
                    headers={"User-Agent": "orchestrator-verify"},
                )
            except (ImportError, ValueError) as exc:  # e.g. a socks5:// proxy without socksio
                raise CacheError(
                    f"cannot reach {self.url} through the proxy the environment names: {exc}",
                    hint="check http_proxy/https_proxy/all_proxy and no_proxy",
                ) from None
        return self._client

    async def __aenter__(self) -> Self:
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

    async def _get(self, rel: str, *, limit: int, stream_to: Path | None = None) -> bytes | None:
        """GET ``rel`` below the cache root, at most ``limit`` bytes; ``None`` when the cache
        does not have it. With ``stream_to`` the body goes to that file."""
        if self.root is not None:
            return await asyncio.to_thread(
                _read_file,
                self.root / rel,
                limit,
                stream_to,
                time.monotonic() + request_deadline(self.timeout, limit),
            )
        tries = 0
        try:
            async for attempt in async_retrying(
                self.retries, self.backoff, give_up=lambda: self.give_up.down is not None
            ):
                with attempt:
                    tries += 1
                    return await self._attempt(rel, limit, stream_to)
        except TransientError as exc:
            gave_up = (
                f"; gave up, the cache stopped answering ({self.give_up.down})"
                if self.give_up.down
                else ""
            )
            raise CacheError(
                f"{self.url}/{rel}: {exc} (after {tries} attempt{'s' if tries > 1 else ''})"
                + gave_up,
                hint=_PATIENCE_HINT,
            ) from None
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _attempt(self, rel: str, limit: int, stream_to: Path | None) -> bytes | None:
        async with self._sem:
            if self.give_up.down is not None:
                raise CacheError(
                    f"{self.url}/{rel}: gave up, the cache stopped answering ({self.give_up.down})",
                    hint=_PATIENCE_HINT,
                )
            started = time.monotonic()
            deadline = request_deadline(self.timeout, limit)
            try:
                status, headers, body = await asyncio.wait_for(
                    self._request(rel, limit, stream_to), deadline
                )
            except TimeoutError:
                why = f"no complete answer within {deadline:.0f} s"
                self.give_up.failed(why, started)
                raise TransientError(why) from None
            except _TooLarge as exc:
                self.give_up.answered()
                raise CacheError(f"{self.url}/{rel}: {exc}") from None
            except _TRANSIENT as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.give_up.failed(why, started)
                raise TransientError(why) from None
        if is_transient_status(status):
            self.give_up.failed(f"HTTP {status}", started)
            raise TransientError(
                f"HTTP {status}", retry_after=parse_retry_after(headers.get("retry-after"))
            )
        self.give_up.answered()
        if status == 200:
            return body
        if status in (404, 403, 410):
            return None
        raise CacheError(f"{self.url}/{rel}: HTTP {status}")

    async def _request(
        self, rel: str, limit: int, stream_to: Path | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            if stream_to is not None:
                return await self._httpx_get(rel, limit, stream_to)
            if self._lean is not None:
                try:
                    return await self._lean.get(rel, limit)
                except _OffHostRedirect as redirect:
                    # another host: the credentials of this cache are not sent there
                    return await self._httpx_get(redirect.location, limit, off_host=True)
            return await self._httpx_get(rel, limit)
        except (ValueError, UnicodeError) as exc:  # anything malformed the parsers let through
            raise _ProtocolError(f"malformed answer: {exc}") from None

    async def _httpx_get(
        self, rel: str, limit: int, stream_to: Path | None = None, *, off_host: bool = False
    ) -> tuple[int, Mapping[str, str], bytes]:
        stream = (
            self.client.stream("GET", rel, auth=None)  # no credentials to another host
            if off_host
            else self.client.stream("GET", rel)
        )
        async with stream as resp:
            if resp.status_code != 200:
                return resp.status_code, resp.headers, b""
            length = resp.headers.get("content-length", "")
            if _DECIMAL.fullmatch(length) and int(length) > limit:
                raise _TooLarge(f"Content-Length {int(length)} exceeds the limit of {limit} bytes")
            size = 0
            buf = bytearray()
            out = open(stream_to, "wb") if stream_to is not None else None  # noqa: SIM115
            try:
                async for chunk in resp.aiter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge(f"body exceeds the limit of {limit} bytes")
                    if out is None:
                        buf += chunk
                    else:
                        out.write(chunk)
            finally:
                if out is not None:
                    out.close()
            return resp.status_code, resp.headers, bytes(buf)

    # -- narinfo ------------------------------------------------------------------------------

    async def narinfo_text(self, hash_part: str) -> str | None:
        body = await self._get(f"{hash_part}.narinfo", limit=NARINFO_MAX)
        if body is None:
            return None
        return body.decode("utf-8", errors="replace")

    async def narinfo(self, hash_part: str) -> NarInfo | None:
        text = await self.narinfo_text(hash_part)
        if text is None:
            return None
        return parse_narinfo(text, source=f"{self.url}/{hash_part}.narinfo")

    async def cache_info(self) -> dict[str, str]:
        body = await self._get("nix-cache-info", limit=CACHE_INFO_MAX)
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
        """Download ``info``'s NAR (at most ``nar_download_limit(info)`` bytes), check
        ``FileSize``/``FileHash``/``NarHash``/``NarSize``, and write the decompressed archive
        to ``dest``."""
        rel = PurePosixPath(info.url)
        if urlsplit(info.url).scheme or rel.is_absolute() or ".." in rel.parts or not info.url:
            # Nix joins URL to the cache's own URL; anything else would leave the cache
            raise CacheError(
                f"narinfo of {info.store_path}: URL {info.url!r} is not a path inside the cache"
            )
        limit = nar_download_limit(info)
        with tempfile.TemporaryDirectory(prefix="orchestrator-nar-") as tmp:
            compressed = Path(tmp) / "download"
            got = await self._get(info.url, limit=limit, stream_to=compressed)
            if got is None:
                raise CacheError(f"{self.url}/{info.url}: NAR missing from the cache")
            size = compressed.stat().st_size
            if info.file_size is not None and size != info.file_size:
                raise CacheError(
                    f"{self.url}/{info.url}: {size} bytes, the narinfo's FileSize is "
                    f"{info.file_size}"
                )
            try:
                await asyncio.to_thread(_check_and_decompress, info, compressed, dest, self.url)
            except BaseException:
                dest.unlink(missing_ok=True)  # nothing half-written
                raise


_PATIENCE_HINT = "check the cache URL and the network; --timeout and --retries tune patience"


def _read_file(p: Path, limit: int, stream_to: Path | None, deadline: float) -> bytes | None:
    """A file of a ``file://`` cache: a regular file only (a FIFO would block for ever, a
    device would never end), at most ``limit`` bytes, read before ``deadline``."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"cannot read {p}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CacheError(f"{p} is not a regular file: refusing to read it")
        if st.st_size > limit:
            raise CacheError(f"{p} is {st.st_size} bytes, more than the {limit} expected")
        out = open(stream_to, "wb") if stream_to is not None else None  # noqa: SIM115
        buf = bytearray()
        size = 0
        try:
            while chunk := os.read(fd, _CHUNK):
                size += len(chunk)
                if size > limit:  # it grew while we read it
                    raise CacheError(f"{p} is more than the {limit} bytes expected")
                if time.monotonic() > deadline:
                    raise CacheError(f"{p}: not read within the deadline")
                if out is None:
                    buf += chunk
                else:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
        return b"" if stream_to is not None else bytes(buf)
    except OSError as exc:
        raise CacheError(f"cannot read {p}: {exc.strerror}") from None
    finally:
        os.close(fd)


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
            size += len(data)
            if size > info.nar_size:  # stop a decompression bomb at the signed size
                raise CacheError(
                    f"{where}/{info.url}: decompresses to more than its NarSize {info.nar_size}"
                )
            h.update(data)
            out.write(data)

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
            with (
                open(src, "rb") as f,
                subprocess.Popen(
                    ["zstd", "-dc"], stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                ) as proc,
            ):
                assert proc.stdout is not None
                assert proc.stderr is not None
                try:
                    while chunk := proc.stdout.read(_CHUNK):
                        sink(chunk)
                except BaseException:
                    proc.kill()  # the sink refused more: do not leave zstd writing
                    raise
                err = proc.stderr.read().decode(errors="replace")
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
