"""``orchestrator distfiles mirror DIR``: download every distfile, for users with a network.

Each distfile is tried at its URLs in order. Bytes go to ``DIR/<name>.part``; an interrupted
download resumes from there with an HTTP ``Range`` request (a server that answers ``200`` instead
of ``206`` sends the whole file again, and the part file starts over). The sha256 is checked before
the part file is renamed to ``DIR/<name>`` (atomic, same directory), so ``DIR`` only ever holds
complete, verified files: the layout of live-bootstrap's ``distfiles/`` and of a ``mirror.sh``
mirror, ready for ``distfiles seed DIR``. A file already in ``DIR`` with the right hash is skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel, Field

from orchestrator.build.distfiles import DistfileSpec
from orchestrator.formats.filehash import sha256_file


class Attempt(BaseModel):
    url: str
    outcome: str  # "ok", "resumed", "http 404", "sha256 mismatch", "error: …"


class MirrorResult(BaseModel):
    filename: str
    sha256: str
    status: Literal["present", "downloaded", "failed", "no-url"]
    path: str | None = None
    url: str | None = None  # the URL that served it
    resumed_from: int = 0  # bytes already in the part file when the winning request started
    attempts: list[Attempt] = Field(default_factory=list)


class _Mismatch(Exception):
    pass


OnBytes = Callable[[int, int | None], None]  # (bytes so far, total or None)


def _fetch(client: httpx.Client, url: str, part: Path, on_bytes: OnBytes) -> int:
    """Download ``url`` into ``part``, resuming what is there. Returns the offset resumed from."""
    offset = part.stat().st_size if part.exists() else 0
    # the file's own bytes: no transfer compression to undo (a .tar.gz served with
    # Content-Encoding: gzip must not be unpacked)
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 416 and offset:
            return offset  # nothing left to send: the part file may already be complete
        if resp.status_code not in (200, 206):
            raise httpx.HTTPStatusError(
                f"http {resp.status_code}", request=resp.request, response=resp
            )
        if resp.status_code == 200:
            offset = 0
        else:
            m = re.match(r"bytes (\d+)-", resp.headers.get("content-range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise OSError(
                    f"asked for bytes {offset}-, got {resp.headers.get('content-range')!r}"
                )
        length = resp.headers.get("content-length")
        total = offset + int(length) if length and length.isdigit() else None
        done = offset
        on_bytes(done, total)
        with open(part, "r+b" if offset else "wb") as f:
            f.seek(offset)
            f.truncate()
            for chunk in resp.iter_raw():  # as received: nothing buffered is lost on a cut
                f.write(chunk)
                done += len(chunk)
                on_bytes(done, total)
            f.flush()
            os.fsync(f.fileno())
    return offset


def mirror_one(
    client: httpx.Client, spec: DistfileSpec, dest: Path, on_bytes: OnBytes | None = None
) -> MirrorResult:
    on_bytes = on_bytes or _ignore_bytes
    final = dest / spec.filename
    part = dest / (spec.filename + ".part")
    base = {"filename": spec.filename, "sha256": spec.sha256}
    if final.is_file() and sha256_file(final) == spec.sha256.lower():
        return MirrorResult(**base, status="present", path=str(final))
    if not spec.urls:
        return MirrorResult(**base, status="no-url", attempts=[])
    attempts: list[Attempt] = []
    for url in spec.urls:
        for fresh in (False, True):  # a resumed file with the wrong hash gets one clean retry
            if fresh and part.exists():
                part.unlink()
            resumable = part.exists() and part.stat().st_size > 0
            try:
                offset = _fetch(client, url, part, on_bytes)
                actual = sha256_file(part)
                if actual != spec.sha256.lower():
                    raise _Mismatch(actual)
            except _Mismatch as exc:
                attempts.append(Attempt(url=url, outcome=f"sha256 mismatch (got {exc})"))
                part.unlink(missing_ok=True)
                if resumable and not fresh:
                    continue
                break
            except httpx.HTTPStatusError as exc:
                attempts.append(Attempt(url=url, outcome=str(exc).split(" for url")[0]))
                break
            except (httpx.HTTPError, OSError) as exc:
                # interrupted: keep the part file, the next URL (or the next run) resumes it
                attempts.append(Attempt(url=url, outcome=f"error: {type(exc).__name__}: {exc}"))
                break
            os.replace(part, final)
            attempts.append(Attempt(url=url, outcome="resumed" if offset else "ok"))
            return MirrorResult(
                **base,
                status="downloaded",
                path=str(final),
                url=url,
                resumed_from=offset,
                attempts=attempts,
            )
    return MirrorResult(**base, status="failed", attempts=attempts)


class MirrorWatcher(Protocol):
    """What a view of the download needs to know (the command draws it; the engine only tells)."""

    def started(self, count: int) -> None: ...
    def file_started(self, spec: DistfileSpec) -> OnBytes: ...
    def file_done(self, result: MirrorResult) -> None: ...


def mirror(
    specs: list[DistfileSpec],
    dest: Path,
    *,
    client: httpx.Client | None = None,
    watch: MirrorWatcher | None = None,
) -> list[MirrorResult]:
    """Every distfile of ``specs`` into ``dest`` (see the module's docstring)."""
    dest.mkdir(parents=True, exist_ok=True)
    own = client is None
    client = client or httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(60.0, connect=20.0),
        headers={"User-Agent": "orchestrator"},
    )
    results: list[MirrorResult] = []
    try:
        if watch is not None:
            watch.started(len(specs))
        for spec in specs:
            on_bytes = watch.file_started(spec) if watch is not None else _ignore_bytes
            r = mirror_one(client, spec, dest, on_bytes)
            if watch is not None:
                watch.file_done(r)
            results.append(r)
    finally:
        if own:
            client.close()
    return results


def _ignore_bytes(done: int, total: int | None) -> None:
    pass
