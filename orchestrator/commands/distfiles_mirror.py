"""``orchestrator distfiles mirror DIR``: the command and its view (the engine is
``build/mirror.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from orchestrator.build.distfiles import DistfileSpec
from orchestrator.build.mirror import MirrorResult, OnBytes, mirror
from orchestrator.commands.distfiles_seed import add_selection_arguments, specs_from_args
from orchestrator.errors import OrchestratorError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(dsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


class ProgressView:
    """The live view of a mirror run on stderr: one bar per file, one for the whole run."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.overall: TaskID | None = None
        self.current: TaskID | None = None

    def started(self, count: int) -> None:
        self.overall = self.progress.add_task(f"{count} distfiles", total=count)

    def file_started(self, spec: DistfileSpec) -> OnBytes:
        task = self.progress.add_task(escape(spec.filename), total=None)
        self.current = task

        def on_bytes(done: int, total: int | None) -> None:
            self.progress.update(task, completed=done, total=total)

        return on_bytes

    def file_done(self, result: MirrorResult) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
        if self.overall is not None:
            self.progress.advance(self.overall)
        if result.status in ("downloaded", "failed"):
            err.print(
                f"{result.status}: {escape(result.filename)}"
                + (f" from {escape(result.url)}" if result.url else ""),
                soft_wrap=True,
            )


def run_mirror(args: argparse.Namespace) -> int:
    specs = specs_from_args(args)
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise OrchestratorError("not a directory", file=dest)
    if not args.json and err.is_terminal:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        with progress:
            results = mirror(specs, dest, watch=ProgressView(progress))
    else:
        results = mirror(specs, dest)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    if args.json:
        print(
            json.dumps({"counts": counts, "results": [r.model_dump() for r in results]}, indent=1)
        )
    else:
        _print_table(args.dir, results)
    err.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to mirror")
    if any(r.status in ("failed", "no-url") for r in results):
        err.print(
            f"next: python -m orchestrator distfiles seed {escape(args.dir)} (adds what is there)"
        )
        return 1
    err.print(f"next: python -m orchestrator distfiles seed {escape(args.dir)}")
    return 0


def _print_table(dest: str, results: list[MirrorResult]) -> None:
    table = Table(title=f"distfiles mirrored into {dest}", title_justify="left")
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
