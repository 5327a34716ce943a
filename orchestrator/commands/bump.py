"""``orchestrator bump STEP --version V [--url URL ...] [--sha256 H ...]``, ``bump --list``,
``bump --drop STEP``: local overrides of one package's distfiles, ahead of upstream.

The override is recorded as data in ``steps/overrides/<package>.json`` and steps/ is regenerated
with it; generated files are never edited. Order of work, so that a failure changes nothing:
1. resolve STEP and the new distfiles (derived from the upstream URLs, or ``--url``);
2. dry-run the generation with the override (placeholder hashes): refuse what would not generate;
3. prefetch every new file (``nix-prefetch`` when installed, else ``nix-prefetch-url``, else
   ``nix store prefetch-file``), checking ``--sha256`` when given;
4. render steps/ with the real override in memory, then swap it in atomically.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import posixpath
import shutil
import subprocess
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from orchestrator.commands import options
from orchestrator.errors import GenerateError, NixError, OrchestratorError
from orchestrator.formats.hashes import HashError, parse_hash
from orchestrator.generate.write import compare, read_existing, render_all, unified
from orchestrator.maintain.report import split_name
from orchestrator.maintain.transaction import Transaction
from orchestrator.nixcli import base_args, nix_binary
from orchestrator.upstream.chain import Chain, load_chain
from orchestrator.upstream.locate import (
    REPO_ROOT,
    chosen_tree,
    committed_tree,
    locate_tree,
)
from orchestrator.upstream.overrides import (
    OVERRIDES_DIR,
    Override,
    OverrideDistfile,
    apply_overrides,
    load_overrides,
)
from orchestrator.upstream.tree import SourceTree

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

PLACEHOLDER_SHA = "0" * 64
PREFETCH_TIMEOUT = 900


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bump",
        help="override one package's distfiles ahead of upstream (steps/overrides/)",
        description="Record a local override of one package's distfiles and regenerate steps/.",
    )
    p.add_argument(
        "step", metavar="STEP", nargs="?", help="package (gcc-15.2.0) or step (gcc-15.2.0-pass1)"
    )
    p.add_argument("--version", dest="new_version", metavar="V", help="the version to build")
    p.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="URL",
        help="new distfile URL (repeat; default: substitute V into the upstream URLs)",
    )
    p.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="HASH",
        help="expected hash of each new file, in order (any form Nix prints); a mismatch is an error",
    )
    p.add_argument("--list", action="store_true", help="show the active overrides")
    p.add_argument("--drop", metavar="STEP", help="remove the override of STEP and regenerate")
    options.json_output(p, "with --list: machine-readable")
    p.add_argument(
        "--dry-run", action="store_true", help="prefetch and show the diff, write nothing"
    )
    p.add_argument(
        "--steps",
        type=Path,
        default=REPO_ROOT / "steps",
        metavar="DIR",
        help="the generated steps/ directory (default: the repository's)",
    )
    options.live_bootstrap(p, default="the snapshot committed in steps/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    steps_dir: Path = args.steps
    if args.list:
        return _list(steps_dir, args.json)
    if args.drop:
        return _drop(args, steps_dir)
    if not args.step or not args.new_version:
        raise OrchestratorError(
            "bump needs STEP and --version V (or --list, or --drop STEP)",
            hint="e.g. python -m orchestrator bump gcc-15.2.0 --version 15.3.0",
        )
    return _bump(args, steps_dir)


# -- the tree and chain ----------------------------------------------------------------------


def _tree(args: argparse.Namespace, steps_dir: Path) -> SourceTree:
    if chosen_tree(args.live_bootstrap):
        return locate_tree(
            chosen_tree(args.live_bootstrap), log=lambda m: err.print(m, markup=False)
        )
    return committed_tree(steps_dir)


def resolve_package(chain: Chain, step: str) -> str:
    """STEP as a package name: ``gcc-15.2.0`` or one of its steps ``gcc-15.2.0-pass1``."""
    builds = {s.step.name for s in chain.steps if s.step.directive == "build"}
    if step in builds:
        return step
    by_attr = {s.step.attr_name: s.step.name for s in chain.steps if s.step.directive == "build"}
    if step in by_attr:
        err.print(
            f"{step} is a pass of {by_attr[step]}: the override replaces the package's sources "
            "(every pass of it), as upstream's steps/<package>/sources does",
            markup=False,
        )
        return by_attr[step]
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


# -- bump ------------------------------------------------------------------------------------


def _render(tree: SourceTree, steps_dir: Path, overrides: list[Override]) -> dict[str, str]:
    chain = apply_overrides(load_chain(tree), overrides)
    files, _ = render_all(tree, chain, steps_dir)
    return files


def _bump(args: argparse.Namespace, steps_dir: Path) -> int:
    tree = _tree(args, steps_dir)
    base = load_chain(tree)
    package = resolve_package(base, args.step)
    upstream_version, replaces, new = plan_distfiles(base, package, args.new_version, args.url)
    if args.sha256 and len(args.sha256) != len(new):
        raise OrchestratorError(
            f"{len(args.sha256)} --sha256 for {len(new)} new file(s) ({', '.join(n for n, _ in new)})",
            hint="give one --sha256 per new file, in order, or none",
        )
    others = [o for o in load_overrides(steps_dir) if o.package != package]
    tool = prefetch_tool()

    def override(hashes: list[str]) -> Override:
        try:
            return Override(
                package=package,
                version=args.new_version,
                upstream_version=upstream_version,
                upstream_commit=base.commit,
                replaces=replaces,
                distfiles=[
                    OverrideDistfile(filename=name, sha256=h, urls=urls)
                    for (name, urls), h in zip(new, hashes, strict=True)
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

    # 2. would generation work with it? (placeholder hashes -- a file the chain already has
    # keeps its hash, the prefetch decides -- nothing fetched, nothing written)
    known = {d.filename: d.sha256 for d in base.distfiles}
    placeholders = [known.get(name, PLACEHOLDER_SHA) for name, _ in new]
    try:
        _render(tree, steps_dir, sorted([*others, override(placeholders)], key=lambda o: o.package))
    except OrchestratorError as exc:
        raise GenerateError(
            f"bump refused, generation would fail: {exc.message}",
            file=exc.file,
            line=exc.line,
            hint=exc.hint,
        ) from None

    # 3. prefetch
    if tool != "nix-prefetch":
        err.print(f"nix-prefetch is not installed: prefetching with {tool}", markup=False)
    hashes = []
    for i, (name, urls) in enumerate(new):
        expected = args.sha256[i] if args.sha256 else None
        h = prefetch(urls[0], name, expected, tool)
        err.print(f"prefetched {name} with {tool}: sha256 {h}", markup=False)
        hashes.append(h)
    ov = override(hashes)

    # 4. render with it and swap in
    files = _render(tree, steps_dir, sorted([*others, ov], key=lambda o: o.package))
    old = read_existing(steps_dir)
    drift = compare(files, old, [])
    for p in drift.added + drift.removed + drift.changed:
        print(unified(files, old, p), end="")
    rel = f"{OVERRIDES_DIR}/{package}.json"
    previous = ov.path(steps_dir).read_text() if ov.path(steps_dir).is_file() else None
    print(
        "".join(
            difflib.unified_diff(
                (previous or "").splitlines(keepends=True),
                ov.to_json().splitlines(keepends=True),
                fromfile=f"a/steps/{rel}" if previous else "/dev/null",
                tofile=f"b/steps/{rel}",
            )
        ),
        end="",
    )
    if args.dry_run:
        err.print("dry run: nothing written", markup=False)
        return 0
    txn = Transaction()
    txn.replace_steps(steps_dir, files, {f"{package}.json": ov.to_json()})
    txn.commit()
    err.print(
        f"wrote steps/{rel} ({package}: {upstream_version} -> {args.new_version}) and regenerated "
        f"{len(drift.changed) + len(drift.added) + len(drift.removed)} file(s) of steps/",
        markup=False,
    )
    return 0


def _drop(args: argparse.Namespace, steps_dir: Path) -> int:
    overrides = load_overrides(steps_dir)
    name = args.drop
    match = [o for o in overrides if o.package == name]
    if not match:
        # a step name of an overridden package
        match = [o for o in overrides if name.startswith(o.package + "-pass")]
    if not match:
        raise OrchestratorError(
            f"no override for {name!r}",
            hint="active: " + (", ".join(o.package for o in overrides) or "none"),
        )
    ov = match[0]
    tree = _tree(args, steps_dir)
    files = _render(tree, steps_dir, [o for o in overrides if o is not ov])
    old = read_existing(steps_dir)
    drift = compare(files, old, [])
    for p in drift.added + drift.removed + drift.changed:
        print(unified(files, old, p), end="")
    if args.dry_run:
        err.print("dry run: nothing written", markup=False)
        return 0
    txn = Transaction()
    txn.replace_steps(steps_dir, files, {f"{ov.package}.json": None})
    txn.commit()
    err.print(
        f"dropped steps/{OVERRIDES_DIR}/{ov.package}.json; {ov.package} follows upstream again",
        markup=False,
    )
    return 0


def _list(steps_dir: Path, as_json: bool) -> int:
    overrides = load_overrides(steps_dir)
    if as_json:
        print(json.dumps([o.model_dump() for o in overrides], indent=1))
        return 0
    if not overrides:
        err.print("no active overrides", markup=False)
        return 0
    table = Table(title=f"{len(overrides)} active override(s) in steps/{OVERRIDES_DIR}/")
    for col in ("package", "upstream", "override", "replaces", "new files", "prefetched with"):
        table.add_column(col, overflow="fold")
    for o in overrides:
        table.add_row(
            o.package,
            o.upstream_version,
            o.version,
            "\n".join(o.replaces),
            "\n".join(f"{d.filename} {d.sha256[:12]}…" for d in o.distfiles),
            o.prefetched_with,
        )
    out.print(table)
    return 0
