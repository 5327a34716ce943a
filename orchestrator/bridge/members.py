"""The stdenv bridge's data: ``stdenv-bridge/members.json``, read and checked.

The same file drives nix/bridge.nix (``builtins.fromJSON``), which refuses the same mistakes at
evaluation time; checking it here as well gives ``plan --bridge`` and the tests an error with the
file and line instead of a Nix trace. Checked: every step has a script that exists, every source
has a url and a sha256, inputs name earlier steps, chain members name a chain build of their
version, and no member is newer than its counterpart in the pinned nixpkgs (both versions named).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.upstream.locate import REPO_ROOT

BRIDGE_DIR = REPO_ROOT / "stdenv-bridge"
DATA_FILE = BRIDGE_DIR / "members.json"
STEP_PREFIX = "bridge-"  # nix/bridge.nix: flake attribute and lbStep of every bridge step


class BridgeError(OrchestratorError):
    """stdenv-bridge/members.json is inconsistent; nothing was built."""


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    url: str
    sha256: str = Field(min_length=1)
    source_from: str = Field(alias="from")


class VersionException(BaseModel):
    """A seed newer than its top-level counterpart, allowed because nixpkgs' own seed ships the
    same version against the same top-level package."""

    model_config = ConfigDict(extra="forbid")

    attr: str
    version: str
    exception_from: str = Field(alias="from")
    why: str = Field(min_length=1)


class Counterpart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attr: str
    version: str
    counterpart_from: str = Field(alias="from")
    # `version` is minimal-bootstrap's and a lower bound of this top-level attribute's (nixpkgs'
    # own checkBootstrapPackages warns unless its seed is no newer than the top level)
    lower_bound_of: str | None = None
    exception: VersionException | None = None


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    member: bool
    version: str
    script: str
    sources: list[Source] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)  # other steps' versions it needs
    step: str | None = None  # a member taken from this chain build (package name)
    bin: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)
    test: str | None = None
    nixpkgs: Counterpart
    why: str

    @property
    def attr(self) -> str:
        return STEP_PREFIX + self.name

    @property
    def from_chain(self) -> bool:
        return self.step is not None


class NixpkgsNote(BaseModel):
    repo: str
    rule: str


class BridgeData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    about: str
    target: str
    nixpkgs: NixpkgsNote
    steps: list[Step]

    @property
    def members(self) -> list[Step]:
        return [s for s in self.steps if s.member]


@dataclass(frozen=True)
class Located:
    """Where a step's entry starts in the file, for messages."""

    file: Path
    lines: dict[str, int]

    def line(self, name: str) -> int | None:
        return self.lines.get(name)


_NAME_LINE = re.compile(r'"name"\s*:\s*"([^"]+)"')


def _lines(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        m = _NAME_LINE.search(line)
        if m:
            out.setdefault(m.group(1), no)
    return out


def normalised(v: str) -> str:
    """Trailing ".0" components dropped: "2.46.0" and "2.46" are one release
    (stdenv-bridge/versions.nix does the same for Nix)."""
    while m := re.fullmatch(r"(.*\d)\.0+", v):
        v = m.group(1)
    return v


def version_key(v: str) -> list[tuple[int, str]]:
    """builtins.compareVersions' order (on the normalised version): split into runs of digits and
    of other characters."""
    parts = re.findall(r"\d+|[a-zA-Z]+", normalised(v))
    return [(int(p), "") if p.isdigit() else (-1, p) for p in parts]


def newer(a: str, b: str) -> bool:
    return version_key(a) > version_key(b)


def load(path: Path = DATA_FILE, *, chain_builds: set[str] | None = None) -> BridgeData:
    """Read and check the data file. ``chain_builds``: package names the chain builds (when given,
    every chain member must name one)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BridgeError(f"cannot read the bridge data: {exc.strerror}", file=path) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BridgeError(f"not JSON: {exc.msg}", file=path, line=exc.lineno) from None
    where = Located(path, _lines(text))
    try:
        data = BridgeData.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"]
        line = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            steps = raw.get("steps", [])
            if loc[1] < len(steps) and isinstance(steps[loc[1]], dict):
                line = where.line(str(steps[loc[1]].get("name")))
        field = ".".join(str(x) for x in loc)
        raise BridgeError(f"{field}: {err['msg']}", file=path, line=line) from None
    check(data, where, chain_builds=chain_builds)
    return data


def check(data: BridgeData, where: Located, *, chain_builds: set[str] | None = None) -> None:
    seen: list[str] = []
    for s in data.steps:
        line = where.line(s.name)

        def fail(msg: str, hint: str | None = None, s: Step = s, line: int | None = line) -> None:
            raise BridgeError(f"step {s.name}: {msg}", file=where.file, line=line, hint=hint)

        if s.name in seen:
            fail("defined twice")
        if not (where.file.parent / s.script).is_file():
            fail(f"script {s.script} does not exist in {where.file.parent.name}/")
        exception = s.nixpkgs.exception
        allowed = exception is not None and not newer(s.version, exception.version)
        if newer(s.version, s.nixpkgs.version) and not allowed:
            fail(
                f"{s.name} {s.version} is newer than the pinned nixpkgs' {s.nixpkgs.attr} "
                f"{s.nixpkgs.version} ({s.nixpkgs.counterpart_from})",
                hint="a seed newer than nixpkgs' own libraries breaks its stage-1 tools: "
                f"pick {s.nixpkgs.version} or older",
            )
        for x in s.inputs:
            if x not in seen:
                fail(f"input {x} is not an earlier bridge step")
        for x in s.versions:
            if x not in {t.name for t in data.steps}:
                fail(f"versions names {x}, which is not a bridge step")
        if s.from_chain:
            assert s.step is not None
            if s.sources:
                fail("a member taken from the chain has no sources of its own")
            if not s.step.endswith("-" + s.version):
                fail(f"chain step {s.step} does not end in its version {s.version}")
            if chain_builds is not None and s.step not in chain_builds:
                fail(f"the chain has no build of {s.step}")
        elif not s.sources:
            fail("neither sources nor a chain step")
        if s.member and s.test is None:
            fail("a member needs a test (how it runs from its own store path)")
        seen.append(s.name)
