"""``orchestrator distfiles mirror DIR``: download every distfile, for users with a network.

Each distfile is tried at its URLs in order. Bytes go to ``DIR/<name>.part``; an interrupted
download resumes from there with an HTTP ``Range`` request (a server that answers ``200`` instead
of ``206`` sends the whole file again, and the part file starts over). The sha256 is checked before
the part file is renamed to ``DIR/<name>`` (atomic, same directory), so ``DIR`` only ever holds
complete, verified files: the layout of live-bootstrap's ``distfiles/`` and of a ``mirror.sh``
mirror, ready for ``distfiles seed DIR``. A file already in ``DIR`` with the right hash is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from orchestrator.build.distfiles import (
    DistfileSpec,
    add_selection_arguments,
    sha256_file,
    specs_from_args,
)
from orchestrator.errors import OrchestratorError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


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
    client: httpx.Client, spec: DistfileSpec, dest: Path, on_bytes: OnBytes = lambda d, t: None
) -> MirrorResult:
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


def mirror(
    specs: list[DistfileSpec],
    dest: Path,
    *,
    client: httpx.Client | None = None,
    show_progress: bool = True,
) -> list[MirrorResult]:
    dest.mkdir(parents=True, exist_ok=True)
    own = client is None
    client = client or httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(60.0, connect=20.0),
        headers={"User-Agent": "orchestrator"},
    )
    results: list[MirrorResult] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show_progress,
        transient=True,
    )
    try:
        with progress:
            overall = progress.add_task(f"{len(specs)} distfiles", total=len(specs))
            for spec in specs:
                task = progress.add_task(escape(spec.filename), total=None)

                def on_bytes(done: int, total: int | None, task=task) -> None:
                    progress.update(task, completed=done, total=total)

                r = mirror_one(client, spec, dest, on_bytes)
                progress.remove_task(task)
                progress.advance(overall)
                results.append(r)
                if show_progress and r.status in ("downloaded", "failed"):
                    err.print(
                        f"{r.status}: {escape(spec.filename)}"
                        + (f" from {escape(r.url)}" if r.url else ""),
                        soft_wrap=True,
                    )
    finally:
        if own:
            client.close()
    return results


# -- CLI -----------------------------------------------------------------------------------------
def register(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser(
        "mirror",
        help="download every distfile into DIR (resumable, sha256-checked)",
        description="Download every distfile from its URLs in order into DIR, resuming "
        "interrupted downloads, checking each sha256. Then `distfiles seed DIR`. "
        "Exit 1 when a distfile could not be downloaded.",
    )
    p.add_argument("dir", metavar="DIR", help="directory to download into (created if missing)")
    add_selection_arguments(p)
    p.set_defaults(func=run_mirror)


def run_mirror(args: argparse.Namespace) -> int:
    specs = specs_from_args(args)
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise OrchestratorError("not a directory", file=dest)
    results = mirror(specs, dest, show_progress=not args.json and err.is_terminal)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    if args.json:
        print(
            json.dumps({"counts": counts, "results": [r.model_dump() for r in results]}, indent=1)
        )
    else:
        table = Table(title=f"distfiles mirrored into {args.dir}", title_justify="left")
        for col in ("status", "file", "from / why"):
            table.add_column(col, overflow="fold")
        style = {
            "present": "green",
            "downloaded": "green",
            "failed": "bold red",
            "no-url": "yellow",
        }
        for r in results:
            if r.status == "present":
                continue
            why = r.url or "; ".join(f"{a.url}: {a.outcome}" for a in r.attempts)
            if r.status == "no-url":
                why = "git source without an HTTP snapshot: use live-bootstrap's mirror.sh"
            table.add_row(f"[{style[r.status]}]{r.status}[/]", escape(r.filename), escape(why))
        if table.row_count:
            out.print(table)
    err.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to mirror")
    if any(r.status in ("failed", "no-url") for r in results):
        err.print(
            f"next: python -m orchestrator distfiles seed {escape(args.dir)} (adds what is there)"
        )
        return 1
    err.print(f"next: python -m orchestrator distfiles seed {escape(args.dir)}")
    return 0
