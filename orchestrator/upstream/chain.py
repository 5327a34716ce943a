"""The whole chain as one model: tree + manifest + profile -> steps with distfiles and pins.

This is the single place that reads a live-bootstrap tree; the generator, ``plan``, ``distfiles``
and the maintainers' reports all take a ``Chain``.
"""

from __future__ import annotations

import bisect
import hashlib

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from orchestrator.errors import OrchestratorError, ParseError, TreeError
from orchestrator.upstream.checksums import Pin, parse_checksums, pins_by_name
from orchestrator.upstream.manifest import Manifest, parse_manifest
from orchestrator.upstream.names import check_variable
from orchestrator.upstream.plan import Plan, PlanStep, resolve
from orchestrator.upstream.profiles import Profile, available_profiles, load_profile
from orchestrator.upstream.sources import SourceLine, parse_sources
from orchestrator.upstream.tree import Snapshot, SourceTree, snapshot_of

MANIFEST = "steps/manifest"


class Distfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    filename: str
    sha256: str
    kind: str  # "f" or "g"
    urls: list[str]  # every alternative URL, in order of first appearance
    git_repo: str | None = None
    git_ref: str | None = None
    first_step: str  # package whose sources first name it (manifest order)
    steps: list[str]  # every package naming it
    pre_network: bool  # needed before the first ``improve: *network*`` (live-bootstrap's rule)
    origins: list[str]  # "steps/<pkg>/sources:<line>" for every line naming it


class UpstreamInput(BaseModel):
    """An upstream file the chain was derived from, hashed when the chain is loaded."""

    model_config = ConfigDict(frozen=True)

    path: str  # relative to the tree's root
    sha256: str


class StepOverride(BaseModel):
    """Marks a step whose distfiles come from ``steps/overrides/<pkg>.json``, not upstream."""

    model_config = ConfigDict(frozen=True)

    version: str
    upstream_version: str
    file: str  # steps/overrides/<pkg>.json


class StepInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: PlanStep
    script: str | None  # path in the tree of what runs (pass script, improve/jump script)
    script_exists: bool
    step_dir: str | None  # steps/<pkg> for builds
    patches_dir: str | None
    distfiles: list[str]  # file names, in sources order
    checksums_file: str | None  # kaem era: installed-file pins
    pins: list[Pin] = Field(default_factory=list)  # its lines, parsed when the chain is loaded
    package_file: str | None  # bash era: <pkg>_<rev>.tar.bz2
    package_sha256: str | None  # its pin in SHA256SUMS.pkgs
    override: StepOverride | None = None  # set by overrides.apply_overrides (then no pin)

    @property
    def pinned_package(self) -> bool:
        """Later steps overlay a layer made from its package alone (early cutoff, nix/cutoff.nix:
        bash-era builds pinned in SHA256SUMS.pkgs), kept as long as the pin is."""
        return (
            self.step.directive == "build"
            and self.step.era == "bash"
            and self.package_sha256 is not None
        )


class Chain(BaseModel):
    model_config = ConfigDict(frozen=True)

    commit: str | None
    profile: str
    arch: str
    manifest: Manifest
    plan: Plan
    steps: list[StepInfo]
    distfiles: list[Distfile]
    env: str  # steps/env as upstream ships it
    package_pins: dict[str, str] = Field(default_factory=dict)  # SHA256SUMS.pkgs
    # what steps/meta.nix and steps/upstream.json record, settled here so the printer sees
    # only the model: every upstream file read (sorted by path) and the data-only snapshot
    inputs: list[UpstreamInput] = Field(default_factory=list)
    snapshot: Snapshot
    _by_name: tuple[list[Distfile], dict[str, Distfile]] | None = PrivateAttr(default=None)

    def distfile(self, filename: str) -> Distfile:
        # an index built once (a scan per lookup made rendering quadratic); it belongs to this
        # very list, so a model_copy with other distfiles builds its own
        cached = self._by_name
        if cached is None or cached[0] is not self.distfiles:
            cached = (self.distfiles, {d.filename: d for d in self.distfiles})
            self._by_name = cached
        return cached[1][filename]


def load_chain(tree: SourceTree, profile: Profile | str = "nix") -> Chain:
    if isinstance(profile, str):
        profile = load_profile(profile)
    manifest = parse_manifest(tree.read_text("steps/manifest"), tree.root / "steps" / "manifest")
    plan = resolve(manifest, profile)
    arch = dict(plan.final_config).get("ARCH", "x86")
    sources = _all_sources(tree, manifest)
    distfiles = _distfiles(manifest, sources)
    package_pins = _package_pins(tree)
    steps = _steps(tree, plan, sources, package_pins, arch)
    env = tree.read_text("steps/env") if tree.has_content("steps/env") else ""
    _check_env(env, str(tree.root / "steps" / "env"))
    inputs = _upstream_inputs(tree, manifest, steps)
    return Chain(
        commit=tree.commit,
        profile=profile.name,
        arch=arch,
        manifest=manifest,
        plan=plan,
        steps=steps,
        distfiles=distfiles,
        env=env,
        package_pins={k: v.sha256 for k, v in package_pins.items()},
        inputs=inputs,
        snapshot=snapshot_of(
            tree,
            [i.path for i in inputs]
            + _checksums_of_other_profiles(tree, manifest, sources, package_pins, profile.name),
        ),
    )


def _upstream_inputs(
    tree: SourceTree, manifest: Manifest, steps: list[StepInfo]
) -> list[UpstreamInput]:
    """Every upstream file the chain was derived from, with its sha256 (sorted by path)."""
    paths = {MANIFEST, "steps/env", "steps/SHA256SUMS.pkgs"}
    for e in manifest.entries:
        if e.kind == "build" and tree.has_content(f"steps/{e.arg}/sources"):
            paths.add(f"steps/{e.arg}/sources")
    for s in steps:
        if s.checksums_file and tree.has_content(s.checksums_file):
            paths.add(s.checksums_file)
    return [
        UpstreamInput(path=p, sha256=hashlib.sha256(tree.read_bytes(p)).hexdigest())
        for p in sorted(paths)
        if tree.has_content(p)
    ]


def _check_env(text: str, path: str) -> None:
    """``steps/env``: comments, blank lines and ``[export ]NAME=value`` (kaem and bash source
    it, update_env.sh appends exports to it; the values are data, the names must be
    variables)."""
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.strip() == "" or line.startswith("#"):
            continue
        name, eq, _ = line.removeprefix("export ").partition("=")
        if not eq:
            raise ParseError("expected NAME=value (or export NAME=value)", file=path, line=lineno)
        check_variable(name, "variable", path, lineno)


def _all_sources(tree: SourceTree, manifest: Manifest) -> dict[str, list[SourceLine]]:
    """Sources of every package any ``build:`` line names, predicates regardless (as upstream)."""
    out: dict[str, list[SourceLine]] = {}
    for entry in manifest.entries:
        if entry.kind != "build" or entry.arg in out:
            continue
        path = f"steps/{entry.arg}/sources"
        if tree.exists(path):
            out[entry.arg] = parse_sources(tree.read_text(path), str(tree.root / path))
        else:
            out[entry.arg] = []
    return out


def _distfiles(manifest: Manifest, sources: dict[str, list[SourceLine]]) -> list[Distfile]:
    """Every distfile once, by file name. Linear in the number of sources lines: membership
    goes through dicts (insertion-ordered), never through the lists being built."""
    network_line = next(
        (e.line for e in manifest.entries if e.kind == "improve" and "network" in e.arg), None
    )
    by_name: dict[str, _Accumulating] = {}
    by_url: dict[str, SourceLine] = {}  # one URL serves one content, whatever it is named
    for entry in manifest.entries:
        if entry.kind != "build":
            continue
        pre_network = network_line is None or entry.line < network_line
        for src in sources.get(entry.arg, []):
            d = by_name.get(src.filename)
            if d is None:
                d = by_name[src.filename] = _Accumulating(src, entry.arg, pre_network=pre_network)
            elif d.first.sha256 != src.sha256:
                first = d.first
                raise ParseError(
                    f"{src.filename} has sha256 {src.sha256}, but {_rel(first.file)}:{first.line} "
                    f"pins it as {first.sha256}",
                    file=src.file,
                    line=src.line,
                    hint="one file name must have one hash across all sources files",
                )
            if src.url is not None:
                seen = by_url.setdefault(src.url, src)
                if seen.sha256 != src.sha256:
                    raise ParseError(
                        f"{src.url} is pinned as {src.sha256}, but {_rel(seen.file)}:{seen.line} "
                        f"pins the same URL as {seen.sha256} ({seen.filename})",
                        file=src.file,
                        line=src.line,
                        hint="one URL has one content: one of the two pins is wrong",
                    )
                d.urls[src.url] = None
            d.steps[entry.arg] = None
            d.origins[f"{_rel(src.file)}:{src.line}"] = None
            d.pre_network = d.pre_network or pre_network
    return [d.distfile() for d in by_name.values()]


class _Accumulating:
    """A distfile while the sources lines naming it are collected (ordered sets as dicts)."""

    def __init__(self, first: SourceLine, step: str, *, pre_network: bool) -> None:
        self.first = first
        self.first_step = step
        self.pre_network = pre_network
        self.urls: dict[str, None] = {}
        self.steps: dict[str, None] = {}
        self.origins: dict[str, None] = {}

    def distfile(self) -> Distfile:
        f = self.first
        return Distfile(
            filename=f.filename,
            sha256=f.sha256,
            kind=f.kind,
            urls=list(self.urls),
            git_repo=f.git_repo,
            git_ref=f.git_ref,
            first_step=self.first_step,
            steps=list(self.steps),
            pre_network=self.pre_network,
            origins=list(self.origins),
        )


class _Repo:
    """File names in /external/repo, sorted: ``ls -1 "${pkg}"*`` counted by two bisections,
    so numbering n steps costs n log n, not n^2 (30,000 steps took a minute)."""

    def __init__(self) -> None:
        self._names: list[str] = []

    def add(self, name: str) -> None:
        bisect.insort(self._names, name)

    def count_prefixed(self, prefix: str) -> int:
        lo = bisect.bisect_left(self._names, prefix)
        return bisect.bisect_left(self._names, prefix + "\U0010ffff", lo) - lo


def _is_file(tree: SourceTree, path: str) -> bool:
    """A file (or a link to one) in the tree: never a directory, FIFO or device."""
    return tree.kind(tree.resolve(path)) in ("file", "executable")


def _checksums_of_other_profiles(
    tree: SourceTree,
    manifest: Manifest,
    sources: dict[str, list[SourceLine]],
    package_pins: dict[str, Pin],
    current: str,
) -> list[str]:
    """Upstream files a chain reads under another profile beyond what this one reads (the
    kaem-era installed-file pins of steps only other profiles keep, e.g. fiwix's): the committed
    snapshot holds them too, so that every profile plans offline on a fresh clone."""
    paths: set[str] = set()
    for name in available_profiles():
        if name == current:
            continue
        try:
            plan = resolve(manifest, load_profile(name))
            arch = dict(plan.final_config).get("ARCH", "x86")
            steps = _steps(tree, plan, sources, package_pins, arch)
        except OrchestratorError as exc:
            exc.hint = exc.hint or (
                f"found while planning the {name!r} profile: the committed snapshot serves every"
                " profile, so the tree must plan under each"
            )
            raise
        paths.update(s.checksums_file for s in steps if s.checksums_file)
    return sorted(paths)


def _rel(path: str) -> str:
    i = path.rfind("steps/")
    return path[i:] if i >= 0 else path


def _package_pins(tree: SourceTree) -> dict[str, Pin]:
    path = "steps/SHA256SUMS.pkgs"
    if not tree.has_content(path):
        return {}
    return pins_by_name(parse_checksums(tree.read_text(path), path, names="file"), path)


def _steps(
    tree: SourceTree,
    plan: Plan,
    sources: dict[str, list[SourceLine]],
    package_pins: dict[str, Pin],
    arch: str,
) -> list[StepInfo]:
    out: list[StepInfo] = []
    built_packages = _Repo()  # bash-era package tarballs, as /external/repo fills up
    for step in plan.steps:
        script, step_dir, patches_dir, checksums = _paths(tree, step, arch)
        # every upstream file the model uses is parsed now: a bad pin stops generation here
        pins = (
            parse_checksums(tree.read_text(checksums), str(tree.root / checksums))
            if checksums is not None
            else []
        )
        package_file = package_sha = None
        if step.directive == "build" and step.era == "bash":
            # helpers.sh get_revision: `ls -1 "${pkg}"* | wc -l` in /external/repo
            revision = built_packages.count_prefixed(step.name)
            package_file = f"{step.name}_{revision}.tar.bz2"
            built_packages.add(package_file)
            pin = package_pins.get(package_file)
            package_sha = pin.sha256 if pin else None
        out.append(
            StepInfo(
                step=step,
                script=script,
                script_exists=script is not None and tree.exists(script),
                step_dir=step_dir,
                patches_dir=patches_dir,
                distfiles=list(dict.fromkeys(s.filename for s in sources.get(step.name, [])))
                if step.directive == "build"
                else [],
                checksums_file=checksums,
                pins=pins,
                package_file=package_file,
                package_sha256=package_sha,
            )
        )
    return out


def _paths(
    tree: SourceTree, step: PlanStep, arch: str
) -> tuple[str | None, str | None, str | None, str | None]:
    """(script, step dir, patches dir, checksums file) of one step; errors name the manifest line."""
    manifest_path = str(tree.root / "steps" / "manifest")
    if step.directive == "build":
        step_dir = f"steps/{step.name}"
        if not tree.is_dir(step_dir):
            raise TreeError(
                f"build: {step.name} has no directory {step_dir}",
                file=manifest_path,
                line=step.line,
            )
        ext = "kaem" if step.era == "kaem" else "sh"
        script = f"{step_dir}/pass{step.occurrence}.{ext}"
        if step.era == "kaem" and not _is_file(tree, script):
            # kaem has no defaults: `kaem --file passN.kaem` on a missing file fails the chain
            raise TreeError(
                f"build: {step.name} (pass {step.occurrence}) needs {script}, which is missing "
                "or not a file",
                file=manifest_path,
                line=step.line,
            )
        # helpers.sh: `[ -e patches-passN ]`, else patches/ (which may not exist)
        patches = None
        for candidate in (f"{step_dir}/patches-pass{step.occurrence}", f"{step_dir}/patches"):
            if tree.exists(candidate):
                patches = candidate
                break
        checksums = None
        for candidate in (
            f"{step_dir}/{step.name}.{arch}.checksums",
            f"{step_dir}/{step.name}.checksums",
        ):
            if tree.exists(candidate):
                checksums = candidate
                break
        return script, step_dir, patches, checksums
    if step.directive in ("improve", "jump"):
        script = f"steps/{step.directive}/{step.name}.sh"
        if not _is_file(tree, script):
            raise TreeError(
                f"{step.directive}: {step.name} needs {script}, which is missing or not a file",
                file=manifest_path,
                line=step.line,
            )
        return script, None, None, None
    return None, None, None, None
