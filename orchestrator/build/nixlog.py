"""Nix's ``--log-format internal-json`` protocol: events, and the state of a build they describe.

With ``--log-format internal-json`` Nix writes one event per stderr line, ``@nix `` followed by a
JSON object (``src/libutil/logging.cc``, ``JSONLogger``). Four actions exist:

* ``start``  ``{id, level, type, text, fields?, parent?}``: an activity begins; ``type`` is an
  :class:`ActivityType` (``105`` = one derivation building, ``fields`` =
  ``[drvPath, machine, curRound, nrRounds]``; ``104`` = the set of builds; ``101`` = a download);
* ``stop``   ``{id}``;
* ``result`` ``{id, type, fields}``: ``type`` is a :class:`ResultType` (``101`` = one build log
  line, ``fields = [line]``; ``105`` = progress ``[done, expected, running, failed]``; ``104`` =
  phase name);
* ``msg``    ``{level, msg, raw_msg?, file?, line?, column?}``: a message, ANSI-coloured.

Anything else on stderr is passed through as a plain line. Nix 2.8 note: ``-L`` *sets* the log
format (to ``bar-with-logs``), so it must come before ``--log-format internal-json``; the JSON
logger reports build lines either way.

:class:`BuildLog` folds events into per-derivation :class:`BuildRecord`s (start/stop times, status,
log lines, kept build directory); it has no clock of its own: the caller passes ``now``.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PREFIX = "@nix "


class ActivityType(IntEnum):
    UNKNOWN = 0
    COPY_PATH = 100
    FILE_TRANSFER = 101
    REALISE = 102
    COPY_PATHS = 103
    BUILDS = 104
    BUILD = 105
    OPTIMISE_STORE = 106
    VERIFY_PATHS = 107
    SUBSTITUTE = 108
    QUERY_PATH_INFO = 109
    POST_BUILD_HOOK = 110
    BUILD_WAITING = 111
    FETCH_TREE = 112  # newer Nix


class ResultType(IntEnum):
    FILE_LINKED = 100
    BUILD_LOG_LINE = 101
    UNTRUSTED_PATH = 102
    CORRUPTED_PATH = 103
    SET_PHASE = 104
    PROGRESS = 105
    SET_EXPECTED = 106
    POST_BUILD_LOG_LINE = 107
    FETCH_STATUS = 108  # newer Nix


class Verbosity(IntEnum):
    ERROR = 0
    WARN = 1
    NOTICE = 2
    INFO = 3
    TALKATIVE = 4
    CHATTY = 5
    DEBUG = 6
    VOMIT = 7


Field_ = str | int


class StartEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    action: Literal["start"]
    id: int
    level: int = 0
    type: int = 0
    text: str = ""
    fields: list[Field_] = Field(default_factory=list)
    parent: int = 0


class StopEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    action: Literal["stop"]
    id: int


class ResultEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    action: Literal["result"]
    id: int
    type: int
    fields: list[Any] = Field(default_factory=list)


class MsgEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    action: Literal["msg"]
    level: int = 0
    msg: str = ""
    raw_msg: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def text(self) -> str:
        return strip_ansi(self.msg)


class TextLine(BaseModel):
    """A stderr line that is not an ``@nix`` event (or not one this parser understands)."""

    model_config = ConfigDict(frozen=True)
    action: Literal["text"] = "text"
    text: str


Event = Annotated[StartEvent | StopEvent | ResultEvent | MsgEvent, Field(discriminator="action")]
_EVENT: TypeAdapter[StartEvent | StopEvent | ResultEvent | MsgEvent] = TypeAdapter(Event)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def parse_line(line: str) -> StartEvent | StopEvent | ResultEvent | MsgEvent | TextLine:
    """One stderr line (with or without its newline) as an event."""
    line = line.rstrip("\r\n")
    if not line.startswith(PREFIX):
        return TextLine(text=line)
    try:
        return _EVENT.validate_python(json.loads(line[len(PREFIX) :]))
    except (json.JSONDecodeError, ValidationError):
        return TextLine(text=line)


_STORE_NAME = re.compile(r"^/[^ ]*?/[0-9a-df-np-sv-z]{32}-(?P<name>.+)$")


def store_name(path: str) -> str:
    """``/nix/store/<hash>-mes-0.27.1-pass1.drv`` -> ``mes-0.27.1-pass1``."""
    m = _STORE_NAME.match(path)
    name = m.group("name") if m else path.rsplit("/", 1)[-1]
    return name.removesuffix(".drv")


# Messages that name a failed derivation: Nix 2.8 ("builder for '...' failed with exit code 1",
# "hash mismatch in fixed-output derivation '...'") and current Nix ("Cannot build '...'").
_FAILED = [
    re.compile(r"builder for '(?P<drv>/[^']+\.drv)' failed(?: with exit code (?P<code>\d+))?"),
    re.compile(r"[Cc]annot build '(?P<drv>/[^']+\.drv)'"),
    re.compile(r"hash mismatch in fixed-output derivation '(?P<drv>/[^']+\.drv)'"),
]
_DEP_FAILED = re.compile(r"(?P<n>\d+) dependencies of derivation '(?P<drv>/[^']+\.drv)' failed")
_KEPT = re.compile(r"keeping build directory '(?P<dir>[^']+)'")
_EXIT = re.compile(r"exit code (?P<code>\d+)")


@dataclass
class BuildRecord:
    """One derivation built (or tried) during the run."""

    drv_path: str
    activity: int
    started: float
    machine: str = ""
    finished: float | None = None
    status: Literal["running", "built", "failed"] = "running"
    phase: str | None = None
    exit_code: int | None = None
    error: str | None = None
    kept_dir: str | None = None
    lines: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    downloads: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return store_name(self.drv_path)

    def seconds(self, now: float) -> float:
        return (self.finished if self.finished is not None else now) - self.started


@dataclass
class Progress:
    done: int = 0
    expected: int = 0
    running: int = 0
    failed: int = 0


@dataclass
class BuildLog:
    """The state of a ``nix build`` as its events describe it."""

    builds: dict[str, BuildRecord] = field(default_factory=dict)  # by drv path, in start order
    progress: Progress = field(default_factory=Progress)  # of the BUILDS activity
    messages: list[MsgEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # level-0 messages, ANSI stripped
    text: list[str] = field(default_factory=list)  # non-JSON stderr lines
    failed: dict[str, str] = field(default_factory=dict)  # drv path -> message
    dependency_failed: set[str] = field(default_factory=set)
    kept_dirs: list[str] = field(default_factory=list)
    _by_activity: dict[int, BuildRecord] = field(default_factory=dict)
    _activities: dict[int, StartEvent] = field(default_factory=dict)
    _builds_activity: int | None = None
    _failed_seen: int = 0

    def record_of(self, activity: int) -> BuildRecord | None:
        """The build that activity ``activity`` (a start or stop event's id) is, if any."""
        return self._by_activity.get(activity)

    # -- folding events ------------------------------------------------------------------------
    def feed_line(
        self, line: str, now: float
    ) -> StartEvent | StopEvent | ResultEvent | MsgEvent | TextLine:
        event = parse_line(line)
        self.feed(event, now)
        return event

    def feed(
        self, event: StartEvent | StopEvent | ResultEvent | MsgEvent | TextLine, now: float
    ) -> None:
        if isinstance(event, StartEvent):
            self._start(event, now)
        elif isinstance(event, StopEvent):
            self._stop(event, now)
        elif isinstance(event, ResultEvent):
            self._result(event)
        elif isinstance(event, MsgEvent):
            self._msg(event)
        elif event.text:
            self.text.append(event.text)

    def _start(self, ev: StartEvent, now: float) -> None:
        self._activities[ev.id] = ev
        if ev.type == ActivityType.BUILD and ev.fields:
            drv = str(ev.fields[0])
            rec = BuildRecord(
                drv_path=drv,
                activity=ev.id,
                started=now,
                machine=str(ev.fields[1]) if len(ev.fields) > 1 else "",
            )
            self.builds[drv] = rec
            self._by_activity[ev.id] = rec
        elif ev.type == ActivityType.BUILDS:
            self._builds_activity = ev.id
        elif ev.type == ActivityType.FILE_TRANSFER and ev.fields:
            running = self.running()
            parent = self._by_activity.get(ev.parent) if ev.parent else None
            target = parent or (running[-1] if len(running) == 1 else None)
            if target is not None:
                target.downloads.append(str(ev.fields[0]))

    def _stop(self, ev: StopEvent, now: float) -> None:
        rec = self._by_activity.get(ev.id)
        if rec is not None and rec.finished is None:
            rec.finished = now
            if rec.status == "running":
                # Nix counts a failure (BUILDS progress) before it stops the build activity and
                # names the derivation only later, in a message; a message overrides this guess.
                failed = rec.drv_path in self.failed or self.progress.failed > self._failed_seen
                rec.status = "failed" if failed else "built"
            self._failed_seen = self.progress.failed

    def _result(self, ev: ResultEvent) -> None:
        rec = self._by_activity.get(ev.id)
        if ev.type in (ResultType.BUILD_LOG_LINE, ResultType.POST_BUILD_LOG_LINE):
            if rec is not None and ev.fields:
                line = strip_ansi(str(ev.fields[0]))
                rec.lines += 1
                rec.tail.append(line)
        elif ev.type == ResultType.SET_PHASE:
            if rec is not None and ev.fields:
                rec.phase = str(ev.fields[0])
        elif (
            ev.type == ResultType.PROGRESS
            and ev.id == self._builds_activity
            and len(ev.fields) >= 4
        ):
            done, expected, running, failed = (int(x) for x in ev.fields[:4])
            self.progress = Progress(done, expected, running, failed)

    def _msg(self, ev: MsgEvent) -> None:
        self.messages.append(ev)
        text = ev.text
        if ev.level == Verbosity.ERROR:
            self.errors.append(text)
        for pattern in _FAILED:
            m = pattern.search(text)
            if m:
                drv = m.group("drv")
                self.failed.setdefault(drv, text.removeprefix("error: ").strip())
                rec = self.builds.get(drv)
                if rec is not None:
                    rec.status = "failed"
                    rec.error = text.removeprefix("error: ").strip()
                    code = _EXIT.search(text)
                    if code:
                        rec.exit_code = int(code.group("code"))
                break
        m = _DEP_FAILED.search(text)
        if m:
            self.dependency_failed.add(m.group("drv"))
        m = _KEPT.search(text)
        if m:
            self.kept_dirs.append(m.group("dir"))
            rec = self._build_for_dir(m.group("dir"))
            if rec is not None:
                rec.kept_dir = m.group("dir")

    def _build_for_dir(self, path: str) -> BuildRecord | None:
        # Nix names it <build-dir>/nix-build-<drv name>.drv-<n>
        base = path.rstrip("/").rsplit("/", 1)[-1]
        m = re.match(r"nix-build-(?P<name>.+)\.drv-\d+$", base)
        if not m:
            return None
        candidates = [r for r in self.builds.values() if r.name == m.group("name")]
        return candidates[-1] if candidates else None

    # -- queries -------------------------------------------------------------------------------
    def running(self) -> list[BuildRecord]:
        return [r for r in self.builds.values() if r.finished is None]

    def finished(self) -> list[BuildRecord]:
        return [r for r in self.builds.values() if r.finished is not None]

    def failures(self) -> list[BuildRecord]:
        return [r for r in self.builds.values() if r.status == "failed"]

    def finish(self, now: float, *, interrupted: bool = False) -> None:
        """After Nix exited: close what is still open; named failures decide the status."""
        for rec in self.builds.values():
            if rec.finished is not None and self.failed:
                rec.status = "failed" if rec.drv_path in self.failed else "built"
            if rec.finished is None:
                rec.finished = now
                if rec.status == "running":
                    rec.status = "failed"
                    if rec.error is None:
                        rec.error = "interrupted" if interrupted else "nix exited while building"
