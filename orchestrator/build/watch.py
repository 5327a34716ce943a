"""One build-watching loop, in nix-output-monitor's shape: run ``nix build`` with
``--log-format internal-json``, read its two streams, parse each stderr line and fold it into a
:class:`~orchestrator.build.nixlog.BuildLog`, and let a view show the state. The loop knows
nothing about how it is shown: the command hands it a :class:`BuildView` (a live display on a
terminal, one line per derivation elsewhere, or nothing)."""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

from orchestrator.build.nixlog import (
    BuildLog,
    BuildRecord,
    MsgEvent,
    ResultEvent,
    StartEvent,
    StopEvent,
    TextLine,
)

Event = StartEvent | StopEvent | ResultEvent | MsgEvent | TextLine
REFRESH = 0.2  # seconds between two ticks of the view
POLL = 0.25  # seconds to wait for a line before ticking anyway
STOP_GRACE = 30  # seconds nix gets to stop after an interrupt before it is killed


class BuildView(Protocol):
    """What the loop tells a view; it draws from the log it is given."""

    def event(self, ev: Event, log: BuildLog, now: float) -> None:
        """One stderr line was parsed and folded into ``log``."""

    def log_lines(self, rec: BuildRecord, lines: list[str]) -> None:
        """``rec``'s build printed these lines (already folded into its tail)."""

    def tick(self, now: float) -> None:
        """Time passed (at most every ``REFRESH`` seconds): redraw if needed."""


@dataclass(frozen=True)
class Watched:
    returncode: int
    stdout: str  # nix build --json's answer
    interrupted: bool  # the user pressed ^C; nix was stopped


def watch(cmd: list[str], log: BuildLog, view: BuildView, clock: Callable[[], float]) -> Watched:
    """Run ``cmd`` (a ``nix build`` with internal-json logs) to its end, folding its log."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1
    )
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    assert proc.stdout is not None
    assert proc.stderr is not None
    for tag, stream in (("err", proc.stderr), ("out", proc.stdout)):
        threading.Thread(target=_pump, args=(stream, lines, tag), daemon=True).start()
    stdout: list[str] = []
    try:
        _loop(lines, log, view, clock, stdout)
        return Watched(proc.wait(), "".join(stdout), interrupted=False)
    except KeyboardInterrupt:
        try:
            rc = proc.wait(timeout=STOP_GRACE)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            rc = proc.wait()
        return Watched(rc, "".join(stdout), interrupted=True)


def _loop(
    lines: queue.Queue[tuple[str, str | None]],
    log: BuildLog,
    view: BuildView,
    clock: Callable[[], float],
    stdout: list[str],
) -> None:
    open_streams = 2
    last_tick = 0.0
    while open_streams:
        try:
            tag, line = lines.get(timeout=POLL)
        except queue.Empty:
            tag, line = None, None
        now = clock()
        if tag is not None and line is None:
            open_streams -= 1
        elif tag == "out" and line is not None:
            stdout.append(line)
        elif tag == "err" and line is not None:
            before = _line_counts(log)
            view.event(log.feed_line(line, now), log, now)
            for rec, new in _new_lines(log, before):
                view.log_lines(rec, new)
        if now - last_tick >= REFRESH:
            view.tick(now)
            last_tick = now


def _pump(stream: IO[str], lines: queue.Queue[tuple[str, str | None]], tag: str) -> None:
    for line in iter(stream.readline, ""):
        lines.put((tag, line))
    lines.put((tag, None))


def _line_counts(log: BuildLog) -> dict[str, int]:
    return {r.drv_path: r.lines for r in log.running()}


def _new_lines(log: BuildLog, before: dict[str, int]) -> list[tuple[BuildRecord, list[str]]]:
    out = []
    for rec in log.running():
        n = rec.lines - before.get(rec.drv_path, 0)
        if n > 0:
            out.append((rec, list(rec.tail)[-n:]))
    return out
