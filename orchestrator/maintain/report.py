"""The change report between two live-bootstrap revisions, computed from their two ``Chain``s.

What a maintainer reviews when the pinned input moves (``update``), when someone else's bump is
in a pull request (``diff``), or after a local override (``bump``):

- steps added / removed / reordered (under the report's profile, by flake attribute);
- version changes, paired by package base name (``gcc-13.3.0 -> gcc-15.2.0``); a step of a
  package whose version changed counts as the *same* step, not as one removed plus one added;
- distfiles added / removed / re-hashed (same file name, other sha256) / with other URLs;
- manifest entries whose predicate outcome changed, under every profile;
- package pins changed in ``steps/SHA256SUMS.pkgs``;
- the syntax of the ``sources`` files (typed ``f``/``g`` lines, or the older untyped form).

The JSON form (``ChangeReport.model_dump``) is the stable interface for bots: ``schema_version``
changes when a field is renamed or removed; new fields may be added. docs/maintainers.md
documents every field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.maintain.cost import RebuildCost, rebuild_cost
from orchestrator.upstream.chain import Chain, Distfile, StepInfo
from orchestrator.upstream.manifest import Manifest
from orchestrator.upstream.plan import Evaluated, resolve
from orchestrator.upstream.profiles import available_profiles, load_profile
from orchestrator.upstream.tree import SourceTree

SCHEMA_VERSION = 1

SourcesSyntax = Literal["typed", "untyped", "mixed", "none"]

# "<base>-<version>": the version is the first dash-separated part starting with a digit.
_NAME_RE = re.compile(r"^(?P<base>.+?)-(?P<version>\d.*)$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Revision(_Model):
    commit: str | None
    sources_syntax: SourcesSyntax
    steps: int
    distfiles: int
    package_pins: int


class SyntaxChange(_Model):
    old: SourcesSyntax
    new: SourcesSyntax
    changed: bool


class StepRef(_Model):
    attr: str
    directive: str
    name: str
    index: int
    line: int


class StepMove(_Model):
    attr: str  # in the new revision
    old_attr: str  # differs from attr when the package's version changed
    old_index: int
    new_index: int


class StepChanges(_Model):
    added: list[StepRef] = Field(default_factory=list)
    removed: list[StepRef] = Field(default_factory=list)
    reordered: list[StepMove] = Field(default_factory=list)


class VersionChange(_Model):
    package: str  # base name, e.g. "gcc"
    old: str
    new: str
    old_name: str  # "gcc-13.3.0"
    new_name: str  # "gcc-15.2.0"


class DistfileRef(_Model):
    filename: str
    sha256: str
    urls: list[str]
    steps: list[str]


class Rehash(_Model):
    filename: str
    old_sha256: str
    new_sha256: str
    steps: list[str]


class UrlChange(_Model):
    filename: str
    old_urls: list[str]
    new_urls: list[str]


class DistfileChanges(_Model):
    added: list[DistfileRef] = Field(default_factory=list)
    removed: list[DistfileRef] = Field(default_factory=list)
    rehashed: list[Rehash] = Field(default_factory=list)
    urls_changed: list[UrlChange] = Field(default_factory=list)


class PredicateChange(_Model):
    profile: str
    directive: str
    name: str  # the entry's argument in the new revision
    old_line: int
    new_line: int
    old_predicate: str | None
    new_predicate: str | None
    old_result: str | None  # the value script-generator computed ("True", "False", a constant)
    new_result: str | None
    old_survives: bool
    new_survives: bool


class PinRef(_Model):
    file: str
    sha256: str


class PinChange(_Model):
    file: str
    old_sha256: str
    new_sha256: str


class PinChanges(_Model):
    added: list[PinRef] = Field(default_factory=list)
    removed: list[PinRef] = Field(default_factory=list)
    changed: list[PinChange] = Field(default_factory=list)


class ChangeReport(_Model):
    schema_version: int = SCHEMA_VERSION
    profile: str
    old: Revision
    new: Revision
    sources_syntax: SyntaxChange
    steps: StepChanges
    versions: list[VersionChange]
    distfiles: DistfileChanges
    predicates: list[PredicateChange]
    package_pins: PinChanges
    # what the bump costs under early cutoff: steps rebuilt and kept (maintain/cost.py)
    rebuild: RebuildCost | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.sources_syntax.changed
            or self.steps.added
            or self.steps.removed
            or self.steps.reordered
            or self.versions
            or self.distfiles.added
            or self.distfiles.removed
            or self.distfiles.rehashed
            or self.distfiles.urls_changed
            or self.predicates
            or self.package_pins.added
            or self.package_pins.removed
            or self.package_pins.changed
        )

    def counts(self) -> dict[str, int]:
        return {
            "steps added": len(self.steps.added),
            "steps removed": len(self.steps.removed),
            "steps reordered": len(self.steps.reordered),
            "version changes": len(self.versions),
            "distfiles added": len(self.distfiles.added),
            "distfiles removed": len(self.distfiles.removed),
            "distfiles re-hashed": len(self.distfiles.rehashed),
            "distfiles with other URLs": len(self.distfiles.urls_changed),
            "predicate outcomes changed": len(self.predicates),
            "package pins added": len(self.package_pins.added),
            "package pins removed": len(self.package_pins.removed),
            "package pins changed": len(self.package_pins.changed),
        }


# -- computing ---------------------------------------------------------------------------------


StepKey = tuple[str, str, int]  # (directive, name, occurrence)


def split_name(name: str) -> tuple[str, str] | None:
    """``gcc-13.3.0`` -> ``("gcc", "13.3.0")``; None for a name without a version."""
    m = _NAME_RE.match(name)
    return (m.group("base"), m.group("version")) if m else None


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Orders versions the way people read them: numeric parts as numbers."""
    return tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p)
        for p in re.findall(r"\d+|[^\d.\-_]+", version)
    )


def sources_syntax(tree: SourceTree, manifest: Manifest) -> SourcesSyntax:
    """Which syntax the tree's ``sources`` files use (typed ``f``/``g`` lines or untyped)."""
    typed = untyped = False
    seen: set[str] = set()
    for entry in manifest.entries:
        if entry.kind != "build" or entry.arg in seen:
            continue
        seen.add(entry.arg)
        path = f"steps/{entry.arg}/sources"
        if not tree.has_content(path):
            continue
        for raw in tree.read_text(path).splitlines():
            tokens = raw.split()
            if not tokens:
                continue
            if tokens[0] in ("f", "file", "g", "git"):
                typed = True
            else:
                untyped = True
    if typed and untyped:
        return "mixed"
    return "typed" if typed else "untyped" if untyped else "none"


def _build_names(manifest: Manifest) -> list[str]:
    return list(dict.fromkeys(e.arg for e in manifest.entries if e.kind == "build"))


def pair_versions(old_names: Iterable[str], new_names: Iterable[str]) -> list[VersionChange]:
    """Pair packages whose version changed, by base name.

    Versions present on both sides are unchanged. Of the remaining ones of a base name, the
    highest old version is paired with the highest new one: the package's final version in the
    chain changed (``perl`` 5.32.1 -> 5.42.0 while intermediate perls come and go). What is left
    over on either side is a package added or removed, not a version change.
    """

    def by_base(names: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in names:
            split = split_name(name)
            if split:
                out.setdefault(split[0], []).append(split[1])
        return out

    old, new = by_base(old_names), by_base(new_names)
    changes: list[VersionChange] = []
    for base in old:
        if base not in new:
            continue
        gone = sorted(set(old[base]) - set(new[base]), key=version_key)
        came = sorted(set(new[base]) - set(old[base]), key=version_key)
        if gone and came:
            o, n = gone[-1], came[-1]
            changes.append(
                VersionChange(
                    package=base, old=o, new=n, old_name=f"{base}-{o}", new_name=f"{base}-{n}"
                )
            )
    return sorted(changes, key=lambda c: (c.package, version_key(c.old)))


def _identity(
    directive: str, name: str, occurrence: int, renames: dict[str, str]
) -> tuple[str, str, int]:
    if directive == "uninstall":
        name = " ".join(renames.get(n, n) for n in name.split(" "))
    else:
        name = renames.get(name, name)
    return (directive, name, occurrence)


def _step_ref(s: StepInfo) -> StepRef:
    return StepRef(
        attr=s.step.attr_name,
        directive=s.step.directive,
        name=s.step.name,
        index=s.step.index,
        line=s.step.line,
    )


def _steps(old: Chain, new: Chain, renames: dict[str, str]) -> StepChanges:
    def keyed(chain: Chain, rn: dict[str, str]) -> list[tuple[StepKey, StepInfo]]:
        # uninstall steps are identified by what they remove, not by their position
        counts: dict[tuple[str, str], int] = {}
        out = []
        for s in chain.steps:
            base = _identity(s.step.directive, s.step.name, 0, rn)[:2]
            counts[base] = counts.get(base, 0) + 1
            out.append(((*base, counts[base]), s))
        return out

    old_keyed = keyed(old, renames)
    new_keyed = keyed(new, {})
    old_keys = {k for k, _ in old_keyed}
    new_keys = {k for k, _ in new_keyed}
    added = [_step_ref(s) for k, s in new_keyed if k not in old_keys]
    removed = [_step_ref(s) for k, s in old_keyed if k not in new_keys]
    common_old = [(k, s) for k, s in old_keyed if k in new_keys]
    common_new = [(k, s) for k, s in new_keyed if k in old_keys]
    in_order = _lcs([k for k, _ in common_old], [k for k, _ in common_new])
    old_by_key = dict(common_old)
    moved = [
        StepMove(
            attr=s.step.attr_name,
            old_attr=old_by_key[k].step.attr_name,
            old_index=old_by_key[k].step.index,
            new_index=s.step.index,
        )
        for k, s in common_new
        if k not in in_order
    ]
    return StepChanges(added=added, removed=removed, reordered=moved)


def _lcs(a: list[StepKey], b: list[StepKey]) -> set[StepKey]:
    """Keys of a longest common subsequence: the steps that kept their relative order.

    Every other common step moved; the LCS makes that the fewest moves that explain the change.
    """
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if a[i] == b[j] else max(below[j], row[j + 1])
    keep: set[StepKey] = set()
    i = j = 0
    while i < n and j < m:
        if a[i] == b[j]:
            keep.add(a[i])
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return keep


def _distfiles(old: Chain, new: Chain) -> DistfileChanges:
    o = {d.filename: d for d in old.distfiles}
    n = {d.filename: d for d in new.distfiles}

    def ref(d: Distfile) -> DistfileRef:
        return DistfileRef(filename=d.filename, sha256=d.sha256, urls=d.urls, steps=d.steps)

    return DistfileChanges(
        added=[ref(d) for name, d in n.items() if name not in o],
        removed=[ref(d) for name, d in o.items() if name not in n],
        rehashed=[
            Rehash(filename=name, old_sha256=o[name].sha256, new_sha256=d.sha256, steps=d.steps)
            for name, d in n.items()
            if name in o and o[name].sha256 != d.sha256
        ],
        urls_changed=[
            UrlChange(filename=name, old_urls=o[name].urls, new_urls=d.urls)
            for name, d in n.items()
            if name in o and o[name].sha256 == d.sha256 and o[name].urls != d.urls
        ],
    )


def _predicates(old: Manifest, new: Manifest, renames: dict[str, str]) -> list[PredicateChange]:
    changes: list[PredicateChange] = []
    for profile_name in available_profiles():
        profile = load_profile(profile_name)
        old_plan, new_plan = resolve(old, profile), resolve(new, profile)

        def keyed(evaluated: list[Evaluated], rn: dict[str, str]) -> dict[StepKey, Evaluated]:
            counts: dict[tuple[str, str], int] = {}
            out: dict[StepKey, Evaluated] = {}
            for ev in evaluated:
                base = _identity(ev.entry.kind, ev.entry.arg, 0, rn)[:2]
                counts[base] = counts.get(base, 0) + 1
                out[(*base, counts[base])] = ev
            return out

        o, n = keyed(old_plan.evaluated, renames), keyed(new_plan.evaluated, {})
        for key, nev in n.items():
            oev = o.get(key)
            if oev is None:
                continue
            if oev.predicate_result == nev.predicate_result and oev.survives == nev.survives:
                continue
            changes.append(
                PredicateChange(
                    profile=profile_name,
                    directive=nev.entry.kind,
                    name=nev.entry.arg,
                    old_line=oev.entry.line,
                    new_line=nev.entry.line,
                    old_predicate=oev.entry.predicate_text,
                    new_predicate=nev.entry.predicate_text,
                    old_result=oev.predicate_result,
                    new_result=nev.predicate_result,
                    old_survives=oev.survives,
                    new_survives=nev.survives,
                )
            )
    return changes


def _pins(old: Chain, new: Chain) -> PinChanges:
    o, n = old.package_pins, new.package_pins
    return PinChanges(
        added=[PinRef(file=f, sha256=h) for f, h in sorted(n.items()) if f not in o],
        removed=[PinRef(file=f, sha256=h) for f, h in sorted(o.items()) if f not in n],
        changed=[
            PinChange(file=f, old_sha256=o[f], new_sha256=h)
            for f, h in sorted(n.items())
            if f in o and o[f] != h
        ],
    )


def _revision(chain: Chain, syntax: SourcesSyntax) -> Revision:
    return Revision(
        commit=chain.commit,
        sources_syntax=syntax,
        steps=len(chain.steps),
        distfiles=len(chain.distfiles),
        package_pins=len(chain.package_pins),
    )


def compare_chains(
    old_tree: SourceTree, old: Chain, new_tree: SourceTree, new: Chain
) -> ChangeReport:
    """The report from ``old`` to ``new`` (both loaded under the same profile)."""
    versions = pair_versions(_build_names(old.manifest), _build_names(new.manifest))
    renames = {v.old_name: v.new_name for v in versions}
    old_syntax = sources_syntax(old_tree, old.manifest)
    new_syntax = sources_syntax(new_tree, new.manifest)
    return ChangeReport(
        profile=new.profile,
        old=_revision(old, old_syntax),
        new=_revision(new, new_syntax),
        sources_syntax=SyntaxChange(
            old=old_syntax, new=new_syntax, changed=old_syntax != new_syntax
        ),
        steps=_steps(old, new, renames),
        versions=versions,
        distfiles=_distfiles(old, new),
        predicates=_predicates(old.manifest, new.manifest, renames),
        package_pins=_pins(old, new),
        rebuild=rebuild_cost(old_tree, old, new_tree, new),
    )
