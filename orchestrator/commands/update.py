"""``orchestrator update [--rev REV | --to-path CHECKOUT] [--dry-run] [--json | --format markdown]``.

Moves the pinned live-bootstrap input (flake.nix's URL, flake.lock's node, with submodules) to a
new revision, regenerates steps/ from it, and prints the change report against what steps/ was
generated from (the committed steps/upstream.json).

- ``--to-path CHECKOUT``: a local git checkout (submodules checked out). The lock is written as
  Nix's own git fetcher would write it for ``git+https://...?submodules=1&rev=REV``: the rev from
  git, ``narHash`` computed by Nix (``nix hash path``) over the checkout of that rev with its
  submodules and without ``.git``, ``lastModified`` (commit time) and ``revCount`` from git; the
  tree is added to the store under the name ``source``, so the new pin resolves offline. With
  ``--dry-run`` CHECKOUT may also be a data-only snapshot (report only).
- ``--rev REV`` (or neither option: the newest commit of the locked ref): Nix fetches, which
  needs network; offline it fails before anything is changed.

Nothing is written unless everything worked: the new tree is parsed (an unknown manifest syntax
is an error naming the line), steps/ is rendered in memory (with the overrides in
steps/overrides/, refused when one is stale), and flake.nix, flake.lock and steps/ are swapped
in together (``Transaction``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console

from orchestrator.commands.diff import add_report_options, emit, report_format
from orchestrator.errors import NixError, OrchestratorError, ParseError
from orchestrator.generate.write import compare, read_existing, render_all
from orchestrator.maintain.report import compare_chains
from orchestrator.maintain.transaction import Transaction
from orchestrator.nixcli import run_nix
from orchestrator.stage0.record import Stage0Drift
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import (
    INPUT_NAME,
    REPO_ROOT,
    LockedInput,
    _from_store,
    committed_tree,
)
from orchestrator.upstream.overrides import apply_overrides, load_overrides
from orchestrator.upstream.tree import SourceTree

err = Console(stderr=True, highlight=False)

_REV_RE = re.compile(r"[0-9a-f]{40}")  # fullmatch: written into flake.nix
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "update",
        help="move the pinned live-bootstrap input to a new revision and regenerate steps/",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--rev", metavar="REV", help="40-digit revision to pin (Nix fetches it: needs network)"
    )
    src.add_argument(
        "--to-path",
        metavar="CHECKOUT",
        type=Path,
        help="pin the HEAD of this local git checkout (with submodules)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the change report, write nothing")
    p.add_argument(
        "--flake",
        type=Path,
        default=REPO_ROOT,
        metavar="DIR",
        help="the flake whose flake.nix, flake.lock and steps/ to update (default: this repository)",
    )
    add_report_options(p)
    p.set_defaults(func=run)


# -- flake.nix and flake.lock -----------------------------------------------------------------


class FlakeFiles:
    """flake.nix and flake.lock of ``root``, and their edited forms for a new revision."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nix_path = root / "flake.nix"
        self.lock_path = root / "flake.lock"
        try:
            self.nix_text = self.nix_path.read_text()
            self.lock_text = self.lock_path.read_text()
            self.lock = json.loads(self.lock_text)
            self.node_name = self.lock["nodes"][self.lock["root"]]["inputs"][INPUT_NAME]
            self.node = self.lock["nodes"][self.node_name]
            self.locked: dict = self.node["locked"]
        except FileNotFoundError as exc:
            raise OrchestratorError("no flake here", file=exc.filename) from None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ParseError(
                f"cannot read the {INPUT_NAME} input: {exc}", file=self.lock_path
            ) from None
        self.url_match = self._find_url()

    @property
    def rev(self) -> str | None:
        return self.locked.get("rev")

    def _find_url(self) -> re.Match[str]:
        pattern = re.compile(r'"git\+[^"]*live-bootstrap[^"]*?rev=([0-9a-f]{40})[^"]*"')
        matches = list(pattern.finditer(self.nix_text))
        if len(matches) != 1 or matches[0].group(1) != self.rev:
            raise ParseError(
                f"expected one live-bootstrap URL with rev={self.rev} in flake.nix, found "
                f"{[m.group(0) for m in matches] or 'none'}",
                file=self.nix_path,
                hint="the input must be pinned by rev= in its URL (with submodules=1)",
            )
        return matches[0]

    def nix_with_rev(self, rev: str) -> str:
        start, end = self.url_match.span(1)
        return self.nix_text[:start] + rev + self.nix_text[end:]

    def nix_without_rev(self) -> str:
        start, end = self.url_match.span(1)
        text = self.nix_text
        before = text[: start - len("rev=")]
        after = text[end:]
        # drop "rev=<hex>" and one adjoining '&'
        if before.endswith("&"):
            before = before[:-1]
        elif after.startswith("&"):
            after = after[1:]
        return before + after

    def lock_with(self, locked: dict) -> str:
        data = json.loads(self.lock_text)
        node = data["nodes"][self.node_name]
        node["locked"] = locked
        if "original" in node and isinstance(node["original"], dict):
            node["original"]["rev"] = locked["rev"]
        # Nix writes flake.lock with sorted keys and two-space indentation
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


# -- a git checkout, as Nix's git fetcher with submodules sees it ------------------------------


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
    )
    if check and proc.returncode != 0:
        raise OrchestratorError(
            f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
        )
    return proc.stdout.strip()


def is_git_checkout(path: Path) -> bool:
    if shutil.which("git") is None:
        return False
    proc = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
    )
    return proc.returncode == 0 and Path(proc.stdout.strip()).resolve() == path.resolve()


def export_revision(repo: Path, rev: str, dest: Path) -> None:
    """The files of ``rev`` with every submodule at the commit ``rev`` records, no ``.git``:
    what ``git checkout REV && git submodule update --init --recursive`` leaves, minus .git,
    which is what Nix's git fetcher with ``submodules = true`` stores."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchestrator-index-") as tmp:
        env = {**os.environ, **_GIT_ENV, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        for cmd in (
            ["git", "-C", str(repo), "read-tree", rev],
            ["git", "-C", str(repo), "checkout-index", "--all", "--force", f"--prefix={dest}/"],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise OrchestratorError(
                    f"{' '.join(cmd[3:])} failed in {repo}: {proc.stderr.strip()}"
                )
    for line in git(repo, "ls-tree", "-r", "-z", rev).split("\0"):
        if not line:
            continue
        meta, _, path = line.partition("\t")
        mode, kind, obj = meta.split()
        if mode != "160000":
            continue
        sub = repo / path
        if not (sub / ".git").exists():
            raise OrchestratorError(
                f"submodule {path} is not checked out",
                file=sub,
                hint="run `git submodule update --init --recursive` in the checkout",
            )
        if (
            subprocess.run(
                ["git", "-C", str(sub), "cat-file", "-e", f"{obj}^{{commit}}"],
                capture_output=True,
                env={**os.environ, **_GIT_ENV},
            ).returncode
            != 0
        ):
            raise OrchestratorError(
                f"submodule {path} does not have commit {obj}, which {rev[:12]} records",
                file=sub,
                hint="run `git submodule update --init --recursive` in the checkout",
            )
        export_revision(sub, obj, dest / path)


def nar_hash(path: Path) -> str:
    """``nix hash path``: the SRI sha256 of the NAR serialisation (what a lock's narHash is)."""
    return run_nix(["hash", "path", "--type", "sha256", "--sri", str(path)]).stdout.strip()


def nar_hash_without_git(path: Path) -> str:
    """The narHash of a tree as Nix's git fetcher stores it: every ``.git`` left out."""
    if not any(p.name == ".git" for p in path.rglob(".git")):
        return nar_hash(path)
    with tempfile.TemporaryDirectory(prefix="orchestrator-nar-") as tmp:
        copy = Path(tmp) / "source"
        shutil.copytree(path, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return nar_hash(copy)


class LockedCheckout:
    def __init__(self, checkout: Path, workdir: Path) -> None:
        if shutil.which("git") is None:
            raise OrchestratorError("git is not installed: cannot read the checkout's commit")
        self.checkout = checkout
        self.rev = git(checkout, "rev-parse", "HEAD")
        if git(checkout, "rev-parse", "--is-shallow-repository") == "true":
            raise OrchestratorError(
                "the checkout is shallow: its revCount would not be the one Nix computes",
                file=checkout,
                hint="run `git fetch --unshallow` in it",
            )
        dirty = git(
            checkout, "status", "--porcelain", "--untracked-files=no", "--ignore-submodules=dirty"
        )
        if dirty:
            err.print(
                f"note: {checkout} has uncommitted changes; pinning its HEAD {self.rev[:12]} as committed",
                markup=False,
            )
        self.last_modified = int(git(checkout, "log", "-1", "--format=%ct", self.rev))
        self.rev_count = int(git(checkout, "rev-list", "--count", self.rev))
        self.tree_dir = workdir / "source"
        export_revision(checkout, self.rev, self.tree_dir)
        self.nar_hash = nar_hash(self.tree_dir)

    def locked(self, previous: dict) -> dict:
        locked = dict(previous)
        locked.update(
            {
                "lastModified": self.last_modified,
                "narHash": self.nar_hash,
                "rev": self.rev,
                "revCount": self.rev_count,
            }
        )
        return locked

    def add_to_store(self) -> str:
        """The exported tree as the store path the lock's narHash names (``source``)."""
        return run_nix(["store", "add-path", "--name", "source", str(self.tree_dir)]).stdout.strip()


# -- fetching a revision with Nix (network) ----------------------------------------------------


def lock_with_nix(flake: FlakeFiles, rev: str | None) -> tuple[dict, Path, str]:
    """Lock the input at ``rev`` (None: the newest commit of the locked ref) in a scratch copy
    of flake.nix/flake.lock; return the locked node, the fetched tree, and the new flake.nix."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-lock-") as tmp:
        scratch = Path(tmp)
        nix_text = flake.nix_with_rev(rev) if rev else flake.nix_without_rev()
        (scratch / "flake.nix").write_text(nix_text)
        (scratch / "flake.lock").write_text(flake.lock_text)
        args = ["flake", "lock", "--option", "connect-timeout", "10", f"path:{scratch}"]
        if rev is None:
            args[2:2] = ["--update-input", INPUT_NAME]
        proc = run_nix(args, check=False)
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr or "").splitlines() if line.startswith("error")]
            raise NixError(
                f"Nix could not fetch live-bootstrap {rev or '(newest)'}: "
                + (lines[-1] if lines else f"exit {proc.returncode}"),
                hint="fetching a revision needs network; offline, use --to-path with a local checkout",
            )
        new_lock = json.loads((scratch / "flake.lock").read_text())
    node = new_lock["nodes"][new_lock["nodes"][new_lock["root"]]["inputs"][INPUT_NAME]]
    locked = node["locked"]
    got = str(locked.get("rev", ""))
    if not _REV_RE.fullmatch(got):
        raise NixError(f"Nix locked live-bootstrap without a revision: {locked}")
    store = _from_store(LockedInput(locked=locked, original=node.get("original", {})))
    if store is None:
        raise NixError(f"Nix locked live-bootstrap {got} but its tree is not in the store")
    if rev is None:
        nix_text = flake.nix_with_rev(got)
    return locked, store, nix_text


# -- the command -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    flake_dir: Path = args.flake
    steps_dir = flake_dir / "steps"
    flake = FlakeFiles(flake_dir)
    if args.rev is not None and not _REV_RE.fullmatch(args.rev):
        raise OrchestratorError(f"--rev {args.rev!r} is not a 40-digit hexadecimal revision")
    say = lambda m: err.print(m, markup=False)  # noqa: E731
    old_tree = committed_tree(steps_dir)

    with tempfile.TemporaryDirectory(prefix="orchestrator-update-") as tmp:
        checkout: LockedCheckout | None = None
        new_locked: dict | None = None
        new_nix: str | None = None
        if args.to_path is not None:
            path = args.to_path
            if not (path / "steps" / "manifest").is_file():
                raise OrchestratorError("not a live-bootstrap tree (no steps/manifest)", file=path)
            if is_git_checkout(path):
                checkout = LockedCheckout(path, Path(tmp))
                say(
                    f"checkout {path}: {checkout.rev} (revCount {checkout.rev_count}, narHash {checkout.nar_hash})"
                )
                new_tree = SourceTree.open(checkout.tree_dir, commit=checkout.rev)
                new_locked = checkout.locked(flake.locked)
                new_nix = flake.nix_with_rev(checkout.rev)
            elif args.dry_run:
                say(f"{path} is not a git checkout: report only (--dry-run)")
                new_tree = SourceTree.open(path)
            else:
                raise OrchestratorError(
                    "not a git checkout: its revision cannot be locked",
                    file=path,
                    hint="pass a git checkout with submodules, or add --dry-run for the report alone",
                )
        else:
            say(
                f"locking live-bootstrap {args.rev or '(newest commit of ' + str(flake.locked.get('ref', 'HEAD')) + ')'} with Nix"
            )
            new_locked, store, new_nix = lock_with_nix(flake, args.rev)
            new_tree = SourceTree.open(store, commit=new_locked["rev"])

        # Everything that can fail on the new revision, before anything is written.
        profile = args.profile
        old_chain = load_chain(old_tree, profile)
        new_chain = load_chain(new_tree, profile)
        gen_chain = new_chain if profile == "nix" else load_chain(new_tree, "nix")
        try:
            files, _ = render_all(
                new_tree, apply_overrides(gen_chain, load_overrides(steps_dir)), steps_dir
            )
        except Stage0Drift as exc:
            if not args.dry_run:
                raise
            # the report is still worth reading; the update itself would stop here
            say(f"the update would fail: {exc}")
            files = None
        report = compare_chains(old_tree, old_chain, new_tree, new_chain)
        emit(report, report_format(args))

        if files is None:
            say("dry run, nothing written (steps/ cannot be generated from this tree, see above)")
            return 0
        drift = compare(files, read_existing(steps_dir), [])
        moved = new_locked is not None and new_locked.get("rev") != flake.rev
        summary = f"steps/: {len(drift.added)} added, {len(drift.removed)} removed, {len(drift.changed)} changed"
        if args.dry_run:
            say(f"dry run, nothing written ({summary})")
            return 0
        assert new_locked is not None and new_nix is not None
        if not moved and drift.clean:
            say(f"live-bootstrap is already pinned at {flake.rev} and steps/ is up to date")
            return 0
        if checkout is not None:
            stored = checkout.add_to_store()
            say(f"added the tree to the Nix store: {stored}")
        txn = Transaction()
        txn.replace_steps(steps_dir, files)
        txn.write(flake.nix_path, new_nix)
        txn.write(flake.lock_path, flake.lock_with(new_locked))
        txn.commit()
    say(f"pinned live-bootstrap {new_locked['rev']} (was {flake.rev}); {summary}")
    return 0
