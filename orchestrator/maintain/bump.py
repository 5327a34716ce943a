"""The engine of ``orchestrator bump``: which package STEP names, its new distfiles, prefetching
them, and rendering steps/ with an override (the command, ``commands/bump.py``, prints and asks
for nothing; the order of work that keeps a failure from changing anything is its docstring)."""

from __future__ import annotations

import difflib
import json
import os
import posixpath
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from orchestrator.errors import GenerateError, NixError, OrchestratorError
from orchestrator.formats.hashes import HashError, parse_hash
from orchestrator.generate.write import render_all
from orchestrator.maintain.report import split_name
from orchestrator.nixcli import base_args, nix_binary
from orchestrator.upstream.chain import Chain, load_chain
from orchestrator.upstream.overrides import (
    OVERRIDES_DIR,
    Override,
    OverrideDistfile,
    apply_overrides,
)
from orchestrator.upstream.tree import SourceTree

PLACEHOLDER_SHA = "0" * 64
PREFETCH_TIMEOUT = 900


def resolve_package(chain: Chain, step: str) -> tuple[str, str | None]:
    """STEP as a package name: ``gcc-15.2.0`` or one of its steps ``gcc-15.2.0-pass1``; and a
    note for the user when it was a step."""
    builds = {s.step.name for s in chain.steps if s.step.directive == "build"}
    if step in builds:
        return step, None
    by_attr = {s.step.attr_name: s.step.name for s in chain.steps if s.step.directive == "build"}
    if step in by_attr:
        note = (
            f"{step} is a pass of {by_attr[step]}: the override replaces the package's sources "
            "(every pass of it), as upstream's steps/<package>/sources does"
        )
        return by_attr[step], note
    close = difflib.get_close_matches(step, sorted(builds | set(by_attr)), n=3)
    raise OrchestratorError(
        f"unknown step {step!r}: live-bootstrap {(chain.commit or '?')[:12]} builds no such package",
        hint=("did you mean: " + ", ".join(close))
        if close
        else "see `python -m orchestrator plan`",
    )


# -- the new distfiles -----------------------------------------------------------------------


def plan_distfiles(
    chain: Chain, package: str, version: str, urls: list[str]
) -> tuple[str, list[str], list[tuple[str, list[str]]]]:
    """(upstream version, replaced file names, [(new file name, its URLs)])."""
    split = split_name(package)
    if split is None:
        raise OrchestratorError(f"{package} has no version in its name: nothing to substitute")
    upstream_version = split[1]
    if version == upstream_version:
        raise OrchestratorError(f"{package} is already at version {version}")
    info = next(s for s in chain.steps if s.step.directive == "build" and s.step.name == package)
    current = [chain.distfile(n) for n in info.distfiles]
    if not current:
        raise OrchestratorError(f"{package} has no distfiles (steps/{package}/sources is empty)")
    versioned = [
        d
        for d in current
        if upstream_version in d.filename or any(upstream_version in u for u in d.urls)
    ]
    if urls:
        if not any(version in u for u in urls):
            raise OrchestratorError(
                f"version {version} matches none of the URLs given",
                hint="each --url should be the new release's file (its name usually carries the version)",
            )
        if not versioned:
            raise OrchestratorError(
                f"no distfile of {package} carries its version {upstream_version}: nothing to replace",
                hint="upstream's files: " + ", ".join(d.filename for d in current),
            )
        new = []
        for u in urls:
            name = posixpath.basename(u.split("?", 1)[0].split("#", 1)[0])
            if not name:
                raise OrchestratorError(f"cannot name a file after the URL {u!r}")
            new.append((name, [u]))
        return upstream_version, [d.filename for d in versioned], new
    if not versioned:
        raise OrchestratorError(
            f"version string {upstream_version!r} (from {package}) matches no URL of {package}",
            hint="pass the new URLs with --url; upstream's: "
            + ", ".join(u for d in current for u in d.urls),
        )
    new = []
    for d in versioned:
        if not d.urls:
            raise OrchestratorError(
                f"{d.filename} is a git source without an HTTP snapshot URL: cannot derive its new URL",
                hint="pass the new URLs with --url",
            )
        derived = [u.replace(upstream_version, version) for u in d.urls if upstream_version in u]
        if not derived:
            raise OrchestratorError(
                f"version string {upstream_version!r} matches no URL of {d.filename} ({', '.join(d.urls)})",
                hint="pass the new URLs with --url",
            )
        new.append((d.filename.replace(upstream_version, version), derived))
    return upstream_version, [d.filename for d in versioned], new


@dataclass(frozen=True)
class BumpPlan:
    """What an override of ``package`` at ``version`` replaces and brings (hashes still open)."""

    package: str
    version: str
    upstream_version: str
    upstream_commit: str | None
    replaces: list[str]
    new: list[tuple[str, list[str]]]  # (file name, its URLs)

    def override(self, hashes: list[str], tool: str) -> Override:
        """The override with these sha256s of the new files (in order)."""
        try:
            return Override(
                package=self.package,
                version=self.version,
                upstream_version=self.upstream_version,
                upstream_commit=self.upstream_commit,
                replaces=self.replaces,
                distfiles=[
                    OverrideDistfile(filename=name, sha256=h, urls=urls)
                    for (name, urls), h in zip(self.new, hashes, strict=True)
                ],
                prefetched_with=tool,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise GenerateError(
                f"bump refused, generation would fail: {where}: {first['msg']}",
                hint="name the file with a store-path-safe URL (letters, digits, +-._?=)",
            ) from None


def plan_bump(
    chain: Chain, package: str, version: str, urls: list[str], sha256s: list[str]
) -> BumpPlan:
    """:func:`plan_distfiles`, with the ``--sha256`` count checked against the new files."""
    upstream_version, replaces, new = plan_distfiles(chain, package, version, urls)
    if sha256s and len(sha256s) != len(new):
        raise OrchestratorError(
            f"{len(sha256s)} --sha256 for {len(new)} new file(s) ({', '.join(n for n, _ in new)})",
            hint="give one --sha256 per new file, in order, or none",
        )
    return BumpPlan(package, version, upstream_version, chain.commit, replaces, new)


def placeholder_hashes(chain: Chain, plan: BumpPlan) -> list[str]:
    """Hashes to try the generation with before anything is fetched: a file the chain already
    has keeps its hash (the prefetch decides), a new one gets a placeholder."""
    known = {d.filename: d.sha256 for d in chain.distfiles}
    return [known.get(name, PLACEHOLDER_SHA) for name, _ in plan.new]


def check_generates(
    tree: SourceTree, steps_dir: Path, others: list[Override], candidate: Override
) -> None:
    """Would steps/ generate with ``candidate`` among the other overrides? Refuse it if not."""
    try:
        render_with(tree, steps_dir, sorted([*others, candidate], key=lambda o: o.package))
    except OrchestratorError as exc:
        raise GenerateError(
            f"bump refused, generation would fail: {exc.message}",
            file=exc.file,
            line=exc.line,
            hint=exc.hint,
        ) from None


def override_diff(ov: Override, steps_dir: Path) -> str:
    """The unified diff of ``steps/overrides/<package>.json`` this override writes."""
    rel = f"{OVERRIDES_DIR}/{ov.package}.json"
    previous = ov.path(steps_dir).read_text() if ov.path(steps_dir).is_file() else None
    return "".join(
        difflib.unified_diff(
            (previous or "").splitlines(keepends=True),
            ov.to_json().splitlines(keepends=True),
            fromfile=f"a/steps/{rel}" if previous else "/dev/null",
            tofile=f"b/steps/{rel}",
        )
    )


# -- prefetching -----------------------------------------------------------------------------


def prefetch_tool() -> str:
    """``nix-prefetch`` when installed, else ``nix-prefetch-url``, else ``nix store prefetch-file``."""
    if shutil.which("nix-prefetch"):
        return "nix-prefetch"
    if shutil.which("nix-prefetch-url"):
        return "nix-prefetch-url"
    nix_binary()  # raises a clear error when Nix itself is missing
    return "nix store prefetch-file"


def prefetch(url: str, name: str, expected: str | None, tool: str) -> str:
    """The sha256 (hex) of the file at ``url``, added to the store under ``name``."""
    expected_h = None
    if expected is not None:
        try:
            expected_h = parse_hash(expected, "sha256")
        except HashError as exc:
            raise OrchestratorError(str(exc)) from None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if tool == "nix-prefetch":
        cmd = ["nix-prefetch", "--silent", "--hash-algo", "sha256"]
        if expected_h is not None:
            cmd += ["--hash", expected_h.nix32]
        cmd += ["fetchurl", "--url", url, "--name", name]
    elif tool == "nix-prefetch-url":
        cmd = [
            "nix-prefetch-url",
            "--option",
            "substituters",
            "",
            "--type",
            "sha256",
            "--name",
            name,
            url,
        ]
        if expected_h is not None:
            cmd.append(expected_h.nix32)
    else:
        cmd = [
            nix_binary(),
            *base_args(),
            "store",
            "prefetch-file",
            "--json",
            "--hash-type",
            "sha256",
            "--name",
            name,
        ]
        if expected_h is not None:
            cmd += ["--expected-hash", expected_h.to_sri()]
        cmd.append(url)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PREFETCH_TIMEOUT, env=env
        )
    except subprocess.TimeoutExpired:
        raise NixError(f"{tool} timed out fetching {url}") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
        lines = [line for line in lines if line.startswith("error")] or lines  # not the retries
        detail = "\n".join(lines[-6:]) or f"exit {proc.returncode}"
        hint = None
        if expected_h is not None and ("hash mismatch" in detail or "hash '" in detail):
            hint = f"the file's sha256 is not {expected_h.hex}, the one given with --sha256"
        raise NixError(f"prefetching {url} with {tool} failed:\n{detail}", hint=hint)
    text = proc.stdout.strip()
    try:
        if tool == "nix store prefetch-file":
            got = parse_hash(json.loads(text)["hash"], "sha256")
        else:
            got = parse_hash(text.splitlines()[-1].strip(), "sha256")
    except (HashError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise NixError(
            f"cannot read the hash {tool} printed for {url}: {exc}: {text[-200:]!r}"
        ) from None
    if expected_h is not None and got != expected_h:
        raise NixError(
            f"hash mismatch for {url}: expected {expected_h.hex}, got {got.hex}",
            hint="the file's hash is not the one given with --sha256",
        )
    return got.hex


def render_with(tree: SourceTree, steps_dir: Path, overrides: list[Override]) -> dict[str, str]:
    chain = apply_overrides(load_chain(tree), overrides)
    files, _ = render_all(tree, chain, steps_dir)
    return files
