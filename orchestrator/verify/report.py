"""The verdicts of ``orchestrator verify``: statuses, one result per path, the summary, and the
``Report`` document ``--json`` prints (schema version 1 with one cache; 2 with several, which
adds the per-cache verdicts and the consensus: ``orchestrator.verify.consensus``).

Pure data: the engines (``verify_engine``, ``rebuild``) fill it, ``verify_results_file`` stores
it as it comes in, ``verify_render`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrator.verify.nardiff import DiffReport

SCHEMA_VERSION = 1
SCHEMA_VERSION_CACHES = 2  # several --cache: per-cache verdicts, consensus, caches named


class Status(StrEnum):
    reproducible = "reproducible"
    equal_modulo_store_paths = "equal-modulo-store-paths"
    differs = "differs"
    not_in_cache = "not-in-cache"
    not_built_locally = "not-built-locally"
    untrusted = "untrusted"
    error = "error"


EXIT_OK = 0
EXIT_DIFFERS = 1
EXIT_UNTRUSTED_OR_ERROR = 2


class CacheVerdict(BaseModel):
    """What one of several caches says about a path (schema version 2)."""

    cache: str
    status: Status
    remote_nar_hash: str | None = None
    remote_nar_size: int | None = None
    signed_by: list[str] = Field(default_factory=list)
    reason: str | None = None


class PathResult(BaseModel):
    """The verdict on one store path (or one Hydra build product)."""

    kind: Literal["path", "pair", "product", "rebuild"] = "path"
    path: str
    status: Status
    theirs: str | None = None  # pair partner, Hydra product/output, or the .check path
    reason: str | None = None
    hint: str | None = None
    local_nar_hash: str | None = None  # sha256:<nix32>
    local_nar_size: int | None = None
    remote_nar_hash: str | None = None
    remote_nar_size: int | None = None
    signed_by: list[str] = Field(default_factory=list)
    narinfo_url: str | None = None
    rewrites: int | None = None  # hash occurrences rewritten (pairs)
    seconds: float | None = None
    diff: DiffReport | None = None
    # schema version 2 (several caches): each cache's verdict, and how they relate
    per_cache: list[CacheVerdict] | None = None
    consensus: str | None = None


class Summary(BaseModel):
    total: int = 0
    reproducible: int = 0
    equal_modulo_store_paths: int = 0
    differs: int = 0
    not_in_cache: int = 0
    not_built_locally: int = 0
    untrusted: int = 0
    error: int = 0
    inconclusive: int = 0
    exit_code: int = 0

    @classmethod
    def of(cls, results: Iterable[PathResult], *, strict: bool = False) -> Summary:
        s = cls()
        for r in results:
            s.total += 1
            field = r.status.value.replace("-", "_")
            setattr(s, field, getattr(s, field) + 1)
        s.inconclusive = s.not_in_cache + s.not_built_locally + s.untrusted + s.error
        if s.untrusted or s.error:
            s.exit_code = EXIT_UNTRUSTED_OR_ERROR
        elif s.differs:
            s.exit_code = EXIT_DIFFERS
        elif strict and s.inconclusive:
            s.exit_code = EXIT_UNTRUSTED_OR_ERROR
        return s

    def line(self) -> str:
        """``N paths: X reproducible, Y differ, Z inconclusive`` (as ``guix challenge``)."""
        good = self.reproducible + self.equal_modulo_store_paths
        noun = "path" if self.total == 1 else "paths"
        text = f"{self.total} {noun}: {good} reproducible, {self.differs} differ, "
        text += f"{self.inconclusive} inconclusive"
        details = []
        if self.equal_modulo_store_paths:
            details.append(f"{self.equal_modulo_store_paths} equal modulo store paths")
        for name in ("not_in_cache", "not_built_locally", "untrusted", "error"):
            n = getattr(self, name)
            if n:
                details.append(f"{n} {name.replace('_', '-')}")
        if details:
            text += " (" + ", ".join(details) + ")"
        return text


class CacheSummary(BaseModel):
    """One cache of a several-cache run: its URL, its own summary, whether it was given up on."""

    url: str
    summary: Summary
    gave_up: str | None = None


class Report(BaseModel):
    """The document ``verify --json`` prints (schema version 1 for one cache, 2 for several;
    fields are only ever added)."""

    schema_version: int = SCHEMA_VERSION
    mode: Literal["against-hydra", "rebuild"]
    cache: str | None = None
    hydra: str | None = None
    job: str | None = None
    hydra_build: int | None = None
    trusted_keys: list[str] = Field(default_factory=list)
    started: str
    finished: str | None = None
    complete: bool = False
    results: list[PathResult] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    cache_gave_up: str | None = None  # why the cache was taken as down mid-run, else null
    # schema version 2 (several caches): each cache with its own summary, and the trusted
    # caches whose signed NarHash differs from the local build's or another trusted cache's
    caches: list[CacheSummary] | None = None
    disagreeing_caches: list[str] | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def report_schema() -> dict[str, Any]:
    return Report.model_json_schema()
