"""``orchestrator diff OLD NEW [--json | --format markdown]``: the change report between two trees.

OLD and NEW each name a live-bootstrap tree:

- a directory: a checkout (with submodules) or a data-only snapshot (``ls-tree.txt``);
- a ``steps/`` directory or its ``upstream.json``: the snapshot committed with generated steps/
  (e.g. another branch's worktree, to review someone else's bump);
- ``committed``: this repository's steps/upstream.json;
- a revision (7 to 40 hex digits): a data-only snapshot of it (``$ORCHESTRATOR_SNAPSHOTS``, the
  shared fixtures), the pinned input if it is that revision and Nix has it, else (a full 40-digit
  revision only) Nix fetches it -- which needs network, and fails cleanly without.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from orchestrator.commands import options
from orchestrator.commands.report_view import print_rich
from orchestrator.display import text
from orchestrator.errors import OrchestratorError
from orchestrator.maintain.report import ChangeReport, compare_chains
from orchestrator.maintain.report_render import to_json, to_markdown
from orchestrator.nixcli import program, run_nix
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import (
    REPO_ROOT,
    _from_store,
    _snapshot_dirs,
    committed_tree,
    read_lock,
)
from orchestrator.upstream.tree import SNAPSHOT_FILE, SourceTree, read_regular

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_REV_RE = re.compile(r"^[0-9a-f]{7,40}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="change report between two live-bootstrap trees or revisions")
    p.add_argument(
        "old", metavar="OLD", help="tree, steps/ dir, upstream.json, 'committed' or revision"
    )
    p.add_argument("new", metavar="NEW", help="same forms as OLD")
    add_report_options(p)
    p.set_defaults(func=run)


def add_report_options(p: argparse.ArgumentParser) -> None:
    options.profile(p, "profile for steps (predicates are compared under every profile)")
    fmt = p.add_mutually_exclusive_group()
    options.json_output(fmt, "the report as JSON (schema in docs/maintainers.md)")
    fmt.add_argument(
        "--format",
        choices=["table", "markdown", "json"],
        default="table",
        help="table (default), markdown (for a pull request), json",
    )


def report_format(args: argparse.Namespace) -> str:
    return "json" if args.json else args.format


def emit(report: ChangeReport, fmt: str) -> None:
    if fmt == "json":
        print(to_json(report), end="")
    elif fmt == "markdown":
        print(to_markdown(report), end="")
    else:
        print_rich(report, out)


def _quiet(message: str) -> None:
    """No progress lines."""


def open_tree(spec: str, *, log: Callable[[str], None] | None = None) -> SourceTree:
    say = log or _quiet
    if spec == "committed":
        return committed_tree(REPO_ROOT / "steps")
    path = Path(spec)
    if path.is_file() and path.name == SNAPSHOT_FILE:
        return committed_tree(path.parent)
    if path.is_dir():
        if (path / "steps" / "manifest").is_file():
            return SourceTree.open(path)
        if (path / SNAPSHOT_FILE).is_file():
            return committed_tree(path)
        raise OrchestratorError(
            "neither a live-bootstrap tree (steps/manifest) nor a generated steps/ (upstream.json)",
            file=path,
        )
    if _REV_RE.match(spec):
        return _tree_of_revision(spec, say)
    raise OrchestratorError(
        f"{spec!r} is not a directory, an upstream.json, 'committed' or a revision",
        hint="pass a checkout, a data-only snapshot, a steps/ directory or a hex revision",
    )


def _tree_of_revision(rev: str, say: Callable[[str], None]) -> SourceTree:
    for base in _snapshot_dirs():
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            commit = d / "COMMIT"
            if commit.is_file() and _commit_text(commit).startswith(rev):
                say(f"revision {rev}: data-only snapshot {d}")
                return SourceTree.open(d)
    try:
        lock = read_lock()
    except OrchestratorError:
        lock = None
    if lock is not None and lock.rev and lock.rev.startswith(rev):
        store = _from_store(lock)
        if store is not None:
            say(f"revision {rev}: the pinned input {store}")
            return SourceTree.open(store, commit=lock.rev)
    if len(rev) != 40:
        raise OrchestratorError(
            f"revision {rev} is not available offline",
            hint="give the full 40-digit revision to let Nix fetch it (needs network), or a path",
        )
    url = str(lock.locked.get("url")) if lock else "https://github.com/fosslinux/live-bootstrap"
    spec = {"type": "git", "url": url, "rev": rev, "submodules": True}
    expr = program("fetch-tree", spec)
    say(f"revision {rev}: fetching {url} with Nix")
    proc = run_nix(
        ["eval", "--raw", "--impure", "--expr", expr, "--option", "connect-timeout", "5"],
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        raise OrchestratorError(
            f"cannot fetch live-bootstrap revision {rev}: {tail[0]}",
            hint="fetching a revision needs network; offline, pass a checkout or snapshot path",
        )
    return SourceTree.open(proc.stdout.strip(), commit=rev)


def run(args: argparse.Namespace) -> int:
    log = lambda m: err.print(text(m))  # noqa: E731 -- stderr, whatever the format
    old_tree = open_tree(args.old, log=log)
    new_tree = open_tree(args.new, log=log)
    old = load_chain(old_tree, args.profile)
    new = load_chain(new_tree, args.profile)
    emit(compare_chains(old_tree, old, new_tree, new), report_format(args))
    return 0


def _commit_text(path: Path) -> str:
    """A snapshot's COMMIT, read as a regular file only; bytes that are not text never match."""
    return read_regular(path).decode("ascii", errors="replace").strip()
