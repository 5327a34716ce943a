"""The results file of ``orchestrator verify``: JSON Lines written as each result is known, so
an interrupted run keeps what it found, and read back (a torn last line is dropped).

By default it lives in the user's cache directory (``$XDG_CACHE_HOME/orchestrator``, else
``~/.cache/orchestrator``): a run never leaves a file in the directory it was started from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.verify.report import CacheSummary, PathResult, Report, Summary

RESULTS_NAME = "verify-results.jsonl"


def default_results_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/orchestrator/verify-results.jsonl`` (an unset or relative
    ``XDG_CACHE_HOME`` means ``~/.cache``, as the XDG base directory spec says)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "orchestrator" / RESULTS_NAME


class ResultsFile:
    """Appends ``{"event": "start"|"result"|"end", ...}`` lines, flushed one by one."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: IO[str] | None = None

    def start(self, report: Report) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        head = report.model_dump(mode="json", exclude={"results", "summary"})
        self._write({"event": "start", **head})

    def result(self, result: PathResult) -> None:
        self._write({"event": "result", **result.model_dump(mode="json")})

    def end(self, report: Report) -> None:
        self._write(
            {
                "event": "end",
                "finished": report.finished,
                "summary": report.summary.model_dump(mode="json"),
                "cache_gave_up": report.cache_gave_up,
                # several caches (schema version 2): each one's summary, the disagreeing ones
                "caches": None
                if report.caches is None
                else [c.model_dump(mode="json") for c in report.caches],
                "disagreeing_caches": report.disagreeing_caches,
            }
        )
        self.close()

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fh is None:
            if self.path is None or not self.path.exists():
                return
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _EndOfSeveral(BaseModel):
    caches: list[CacheSummary] | None = None
    disagreeing_caches: list[str] | None = None


def load_results(path: str | os.PathLike[str]) -> Report:
    """Read a results file back, complete or cut short (a torn last line is dropped)."""
    head: dict[str, Any] | None = None
    results: list[PathResult] = []
    end: dict[str, Any] | None = None
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break  # torn write of an interrupted run
            try:
                obj = json.loads(line)
                event = obj.pop("event")
                if event == "start":
                    head = obj
                elif event == "result":
                    results.append(PathResult.model_validate(obj))
                elif event == "end":
                    end = obj
            except (ValueError, KeyError, ValidationError) as exc:
                raise OrchestratorError(
                    f"bad results line: {exc}", file=str(path), line=lineno
                ) from None
    if head is None:
        raise OrchestratorError("results file has no start line", file=str(path))
    report = Report.model_validate({**head, "results": [r.model_dump() for r in results]})
    report.summary = Summary.of(report.results)
    if end is not None:
        report.complete = True
        report.finished = end.get("finished")
        report.cache_gave_up = end.get("cache_gave_up")
        try:  # several caches (schema version 2): validated like every other field
            extra = _EndOfSeveral.model_validate(end)
        except ValidationError as exc:
            raise OrchestratorError(f"bad end line: {exc}", file=str(path)) from None
        report.caches, report.disagreeing_caches = extra.caches, extra.disagreeing_caches
    return report
