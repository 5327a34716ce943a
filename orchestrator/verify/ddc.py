"""The verdict of the ``ddc-stage0`` check (nix/ddc.nix, docs/ddc.md), read back.

The check writes ``$out/ddc.json`` (format 1) with the chain's own tools; this is its typed
model, for whatever shows it (the chain report). A file that is not one (truncated, another
format, or entries that contradict the summary) is an error naming the file, and the line when
the JSON itself is broken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.errors import OrchestratorError

VERDICT_NAME = "ddc.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DdcFile(_Strict):
    """One side of a comparison: the file's sha256 (as the chain's sha256sum printed it), its
    size and its store path."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    path: str


class DdcEntry(_Strict):
    step: str  # the target chain's step id: the stage0-posix path of the file
    tool: str | None  # its name in <arch>/bin, None for an intermediate file
    target: DdcFile  # made by the target chain (x86 seed)
    rebuilt: DdcFile  # made by the host chain's programs (AMD64 seed)
    identical: bool

    @model_validator(mode="after")
    def _agrees(self) -> DdcEntry:
        same = self.target.sha256 == self.rebuilt.sha256 and self.target.size == self.rebuilt.size
        if same != self.identical:
            raise ValueError(f"{self.step}: identical={self.identical} but the hashes say {same}")
        return self


class DdcSkipped(_Strict):
    id: str
    why: str


class DdcVerdict(_Strict):
    format: Literal[1]
    check: str
    target: str
    host: str
    files: list[DdcEntry]
    compared: int
    differing: list[str]
    identical: bool
    skipped: list[DdcSkipped]

    @model_validator(mode="after")
    def _summary(self) -> DdcVerdict:
        if self.compared != len(self.files) or not self.files:
            raise ValueError(f"compared={self.compared} but {len(self.files)} files")
        differing = [f.step for f in self.files if not f.identical]
        if differing != self.differing:
            raise ValueError(f"differing={self.differing} but the files say {differing}")
        if self.identical != (not differing):
            raise ValueError(f"identical={self.identical} with {len(differing)} files differing")
        return self

    def summary(self) -> str:
        """One line for a report: how many files were compared, and which differ."""
        same = self.compared - len(self.differing)
        text = f"{same} of {self.compared} compared bit-identical"
        if self.differing:
            text += f"; differ: {', '.join(self.differing)}"
        return text

    @property
    def tools(self) -> dict[str, DdcEntry]:
        """The programs the target chain leaves in bin/, by name."""
        return {f.tool: f for f in self.files if f.tool is not None}


def load_verdict(path: str | os.PathLike[str]) -> DdcVerdict:
    """``ddc.json``, or the check's output directory that holds it."""
    p = Path(path)
    if p.is_dir():
        p = p / VERDICT_NAME
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OrchestratorError(f"cannot read the DDC verdict: {exc}", file=p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrchestratorError(
            f"not JSON ({exc.msg}): truncated or not a DDC verdict", file=p, line=exc.lineno
        ) from None
    return verdict_of(data, p)


def looks_like_verdict(data: object) -> bool:
    """Whether parsed JSON claims to be a DDC verdict (then it must be a valid one)."""
    return isinstance(data, dict) and "format" in data and data.get("check") == "ddc-stage0"


def verdict_of(data: object, p: Path) -> DdcVerdict:
    """Parsed JSON of ``p`` as a verdict, or an error naming ``p``."""
    try:
        return DdcVerdict.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise OrchestratorError(
            f"not a DDC verdict of format 1: {where}: {first['msg']}",
            file=p,
            hint="written by `nix build .#checks.x86_64-linux.ddc-stage0` (docs/ddc.md)",
        ) from None
