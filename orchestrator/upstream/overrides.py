"""Local overrides of a package's distfiles, ahead of upstream: ``steps/overrides/<pkg>.json``.

An override is data a maintainer commits (``orchestrator bump``), never a generated file: it
names the upstream files it replaces and the new ones with their prefetched sha256. Generation
applies it to the ``Chain`` before rendering, so the step file says ``override = { ... }`` and its
bash-era package pin becomes null: upstream's ``SHA256SUMS.pkgs`` does not describe what the new
sources build (``no upstream pin``).

An override whose package or replaced files are gone upstream is *stale*: generation refuses it
with a hint to drop it (``bump --drop``), so an ``update`` never silently discards one.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import GenerateError, ParseError
from orchestrator.upstream.chain import Chain, Distfile, StepInfo, StepOverride
from orchestrator.upstream.names import NAME_MAX, NAME_RE, is_store_name
from orchestrator.upstream.sources import SHA256_RE

OVERRIDES_DIR = "overrides"
SCHEMA_VERSION = 1


class OverrideDistfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str
    sha256: str  # hex, as in upstream's sources files
    urls: list[str] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not SHA256_RE.fullmatch(v):
            raise ValueError(f"sha256 {v!r} is not 64 hexadecimal digits")
        return v.lower()

    @field_validator("filename")
    @classmethod
    def _name(cls, v: str) -> str:
        if not is_store_name(v):
            raise ValueError(f"{v!r} cannot name a Nix store path (letters, digits, +-._?= only)")
        return v


class Override(BaseModel):
    """``steps/overrides/<package>.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    package: str  # the manifest's build: name, e.g. "gcc-15.2.0" (every pass of it)
    version: str  # the version the override builds
    upstream_version: str  # the version upstream pins at upstream_commit
    upstream_commit: str | None  # live-bootstrap revision the override was made against
    replaces: list[str] = Field(min_length=1)  # upstream distfile names it removes
    distfiles: list[OverrideDistfile] = Field(min_length=1)  # what it puts in their place
    prefetched_with: str  # the tool that computed the hashes

    @field_validator("package")
    @classmethod
    def _package(cls, v: str) -> str:
        # it names the override file, steps/overrides/<package>.json
        if NAME_RE.fullmatch(v) is None or len(v) > NAME_MAX:
            raise ValueError(f"{v!r} is not a package name (letters, digits, +._- only)")
        return v

    def path(self, steps_dir: Path) -> Path:
        return steps_dir / OVERRIDES_DIR / f"{self.package}.json"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=1) + "\n"


def load_overrides(steps_dir: Path) -> list[Override]:
    """Every override under ``steps_dir/overrides``, sorted by package."""
    directory = Path(steps_dir) / OVERRIDES_DIR
    if not directory.is_dir():
        return []
    out: list[Override] = []
    for path in sorted(directory.glob("*.json")):
        try:
            override = Override.model_validate_json(path.read_text())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ParseError(
                f"invalid override: {where}: {first['msg']}",
                file=path,
                hint="fix it, or remove it with `python -m orchestrator bump --drop PACKAGE`",
            ) from None
        if path.stem != override.package:
            raise ParseError(
                f"override for {override.package!r} must be named {override.package}.json",
                file=path,
            )
        out.append(override)
    return out


def apply_overrides(chain: Chain, overrides: list[Override]) -> Chain:
    """The chain with each override's distfiles in place of the upstream ones it replaces."""
    if not overrides:
        return chain
    steps = list(chain.steps)
    distfiles = {d.filename: d for d in chain.distfiles}
    order = [d.filename for d in chain.distfiles]
    for ov in overrides:
        origin = f"steps/{OVERRIDES_DIR}/{ov.package}.json"
        targets = [
            i
            for i, s in enumerate(steps)
            if s.step.directive == "build" and s.step.name == ov.package
        ]
        if not targets:
            raise GenerateError(
                f"stale override: live-bootstrap {(chain.commit or '?')[:12]} builds no {ov.package}",
                file=origin,
                hint=f"upstream renamed or removed it: `python -m orchestrator bump --drop {ov.package}`",
            )
        for i in targets:
            steps[i] = _override_step(steps[i], ov, origin)
        pre_network = any(distfiles[n].pre_network for n in ov.replaces if n in distfiles)
        for name in ov.replaces:
            d = distfiles.get(name)
            if d is None:
                continue
            users = [p for p in d.steps if p != ov.package]
            if users:
                distfiles[name] = d.model_copy(update={"steps": users})
            else:
                del distfiles[name]
        for new in ov.distfiles:
            existing = distfiles.get(new.filename)
            if existing is not None:
                if existing.sha256 != new.sha256:
                    raise GenerateError(
                        f"{new.filename} has sha256 {new.sha256} here, but upstream pins it as "
                        f"{existing.sha256} ({', '.join(existing.origins)})",
                        file=origin,
                        hint="one file name must have one hash across the chain",
                    )
                if ov.package not in existing.steps:
                    distfiles[new.filename] = existing.model_copy(
                        update={
                            "steps": [*existing.steps, ov.package],
                            "origins": [*existing.origins, origin],
                        }
                    )
                continue
            distfiles[new.filename] = Distfile(
                filename=new.filename,
                sha256=new.sha256,
                kind="f",
                urls=list(new.urls),
                first_step=ov.package,
                steps=[ov.package],
                pre_network=pre_network,
                origins=[origin],
            )
            order.append(new.filename)
    return chain.model_copy(
        update={"steps": steps, "distfiles": [distfiles[n] for n in order if n in distfiles]}
    )


def _override_step(info: StepInfo, ov: Override, origin: str) -> StepInfo:
    missing = [n for n in ov.replaces if n not in info.distfiles]
    if missing:
        raise GenerateError(
            f"stale override: upstream's {ov.package} no longer has {', '.join(missing)}",
            file=origin,
            hint=f"upstream moved on: `python -m orchestrator bump --drop {ov.package}`, then bump again",
        )
    # the new files take the place of the first replaced one; the others keep their order
    names: list[str] = []
    inserted = False
    for name in info.distfiles:
        if name in ov.replaces:
            if not inserted:
                names.extend(d.filename for d in ov.distfiles if d.filename not in names)
                inserted = True
        elif name not in names:
            names.append(name)
    return info.model_copy(
        update={
            "distfiles": names,
            "package_sha256": None,
            "override": StepOverride(
                version=ov.version, upstream_version=ov.upstream_version, file=origin
            ),
        }
    )
