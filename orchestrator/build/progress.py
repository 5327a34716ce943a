"""What ``orchestrator build`` knows while it watches: steps, the durations cache behind the ETA.

* :class:`Durations`: seconds each derivation took last time, by derivation *name* (a step keeps
  its name when its hash changes), in ``$XDG_CACHE_HOME/orchestrator/durations.json``.
* :class:`StepIndex`: derivation name -> chain step (index, pass) from the generated chain.
* :class:`LiveView`: the text of the live view of a :class:`~orchestrator.build.nixlog.BuildLog` --
  builds k/M, each running step with step i/N, elapsed, last-run time, the ETA.
* :func:`failure_report`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.build.nixlog import BuildLog, BuildRecord

CACHE_FILE = "durations.json"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "orchestrator"


class Durations:
    """``{"version": 1, "seconds": {name: float}}``; unreadable files count as empty."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / CACHE_FILE
        self.seconds: dict[str, float] = {}
        try:
            data = json.loads(self.path.read_text())
            self.seconds = {str(k): float(v) for k, v in data.get("seconds", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            self.seconds = {}

    def get(self, name: str) -> float | None:
        return self.seconds.get(name)

    def record(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(seconds, 3)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".durations-")
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "seconds": dict(sorted(self.seconds.items()))}, f, indent=1)
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class StepRef:
    attr: str
    index: int  # from 0
    total: int  # steps of the chain up to the target (N of "step i/N")
    name: str
    pass_no: int | None
    directive: str

    def label(self) -> str:
        what = (
            f"{self.name} pass {self.pass_no}" if self.pass_no else f"{self.directive} {self.name}"
        )
        return f"step {self.index + 1}/{self.total} {what}"


class StepIndex:
    """Chain steps by attribute name; derivations are matched to steps by their name."""

    def __init__(self, steps: list[StepRef]) -> None:
        self.steps = steps
        self.by_attr = {s.attr: s for s in steps}
        # longest first, so that "gcc-4.0.4-pass1" does not match "c-4.0.4-pass1"-like tails
        self._attrs = sorted(self.by_attr, key=len, reverse=True)
        self._aliases: dict[str, StepRef] = {}

    def alias(self, drv_name: str, attr: str) -> None:
        """The derivation named ``drv_name`` is step ``attr`` (the runner's ``lbStep``)."""
        if attr in self.by_attr:
            self._aliases[drv_name] = self.by_attr[attr]

    def for_name(self, drv_name: str) -> StepRef | None:
        if drv_name in self._aliases:
            return self._aliases[drv_name]
        if drv_name in self.by_attr:
            return self.by_attr[drv_name]
        for attr in self._attrs:
            if drv_name.endswith("-" + attr) or drv_name.startswith(attr + "-"):
                return self.by_attr[attr]
        return None


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class Eta:
    seconds: float | None  # None: no derivation of this build was ever timed
    unknown: int  # derivations still to build that have no earlier run

    def text(self) -> str:
        if self.seconds is None:
            return f"ETA unknown: {self.unknown} never timed (no earlier run)"
        more = f" + {self.unknown} never timed" if self.unknown else ""
        return f"ETA {fmt_seconds(self.seconds)}{more}"


def eta(log: BuildLog, to_build: list[str], durations: Durations, now: float) -> Eta:
    """Remaining time from earlier runs: what is still to build, minus what already ran."""
    from orchestrator.build.nixlog import store_name

    total = 0.0
    unknown = 0
    timed = 0  # derivations of this build with an earlier run, finished ones included
    for drv in to_build:
        rec = log.builds.get(drv)
        expected = durations.get(store_name(drv))
        timed += expected is not None
        if rec is not None and rec.finished is not None:
            continue
        if expected is None:
            unknown += 1
            continue
        ran = rec.seconds(now) if rec is not None else 0.0
        total += max(0.0, expected - ran)
    # Once the timed derivations are done, what is left is "0:00 + N never timed", not "?":
    # the estimate stays a number for as long as any part of it was measured.
    return Eta(total if timed else None, unknown)


class LiveView:
    """What the live display shows, as text (``commands/build_view.py`` draws it); ``now``
    comes from ``clock``."""

    def __init__(
        self,
        title: str,
        log: BuildLog,
        steps: StepIndex,
        durations: Durations,
        to_build: list[str],
        started: float,
        clock: Callable[[], float],
        log_lines: int = 8,
        fetches: set[str] | None = None,
    ) -> None:
        self.title = title
        self.log = log
        self.steps = steps
        self.durations = durations
        self.to_build = to_build
        self.started = started
        self.clock = clock
        self.log_lines = log_lines
        self.fetches = fetches or set()  # drv paths of distfile downloads (builtin:fetchurl)

    def header(self, now: float) -> str:
        p = self.log.progress
        total = max(p.expected, len(self.to_build))
        done = len([r for r in self.log.finished() if r.status == "built"])
        failed = len(self.log.failures())
        parts = [f"builds {done}/{total}"]
        if failed:
            parts.append(f"{failed} failed")
        parts.append(f"elapsed {fmt_seconds(now - self.started)}")
        parts.append(eta(self.log, self.to_build, self.durations, now).text())
        return f"{self.title}  ·  " + "  ·  ".join(parts)

    def running_line(self, rec: BuildRecord, now: float) -> str:
        return f"▶ {self.describe(rec)}  {fmt_seconds(rec.seconds(now))}{self._last_run(rec)}"

    def describe(self, rec: BuildRecord) -> str:
        step = self.steps.for_name(rec.name)
        kind = "fetch" if self._is_fetch(rec) else "build"
        if step is not None:
            return f"{step.label()} ({rec.name})"
        return f"{kind} {rec.name}"

    def _is_fetch(self, rec: BuildRecord) -> bool:
        return rec.drv_path in self.fetches or bool(rec.downloads)

    def _last_run(self, rec: BuildRecord) -> str:
        last = self.durations.get(rec.name)
        return f" (last run {fmt_seconds(last)})" if last is not None else ""


def failure_report(
    rec: BuildRecord,
    steps: StepIndex,
    *,
    rerun: str,
    tail: int = 30,
) -> str:
    """What failed, its last ``tail`` log lines, how to get at it again."""
    step = steps.for_name(rec.name)
    if step is not None:
        what = (
            f"{step.name} pass {step.pass_no}" if step.pass_no else f"{step.directive} {step.name}"
        )
        head = f"step {what} (attribute {step.attr}, chain step {step.index + 1} of {step.total}) failed"
    else:
        head = f"{rec.name} failed"
    lines = [head + (f": {rec.error}" if rec.error else "")]
    shown = list(rec.tail)[-tail:]
    if shown:
        lines.append(f"last {len(shown)} log lines (of {rec.lines}):")
        lines.extend("  " + line for line in shown)
    else:
        lines.append("(the build printed nothing)")
    if rec.kept_dir:
        lines.append(f"the build directory is kept at {rec.kept_dir}: re-enter it there")
    else:
        lines.append(f"to keep its build directory and re-enter it: {rerun}")
    lines.append(f"full log: nix log {rec.drv_path}")
    return "\n".join(lines)
