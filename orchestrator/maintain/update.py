"""The engine of ``orchestrator update``: flake.nix and flake.lock, a git checkout locked as Nix's
git fetcher with submodules would lock it, a revision fetched with Nix, and the update prepared
in memory and applied in one transaction (the command, ``commands/update.py``, prints)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import NixError, OrchestratorError, ParseError
from orchestrator.generate.write import Drift, compare, read_existing, render_all
from orchestrator.gitcli import git, is_git_checkout, run_git
from orchestrator.maintain.report import ChangeReport, compare_chains
from orchestrator.maintain.transaction import Transaction
from orchestrator.nixcli import hash_path, run_nix
from orchestrator.stage0.record import Stage0Drift
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import INPUT_NAME, LockedInput, _from_store
from orchestrator.upstream.overrides import apply_overrides, load_overrides
from orchestrator.upstream.tree import SourceTree

REV_RE = re.compile(r"[0-9a-f]{40}")  # fullmatch: written into flake.nix
Say = Callable[[str], None]  # one line of progress for the user
# a flake.lock node's "locked" attributes, JSON as Nix writes them (rev, narHash, revCount, ...)
LockedAttrs = dict[str, Any]


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
            self.locked: LockedAttrs = self.node["locked"]
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

    def lock_with(self, locked: LockedAttrs) -> str:
        data = json.loads(self.lock_text)
        node = data["nodes"][self.node_name]
        node["locked"] = locked
        if "original" in node and isinstance(node["original"], dict):
            node["original"]["rev"] = locked["rev"]
        # Nix writes flake.lock with sorted keys and two-space indentation
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


# -- a git checkout, as Nix's git fetcher with submodules sees it ------------------------------


def export_revision(repo: Path, rev: str, dest: Path) -> None:
    """The files of ``rev`` with every submodule at the commit ``rev`` records, no ``.git``:
    what ``git checkout REV && git submodule update --init --recursive`` leaves, minus .git,
    which is what Nix's git fetcher with ``submodules = true`` stores."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchestrator-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", rev, env=env)
        git(repo, "checkout-index", "--all", "--force", f"--prefix={dest}/", env=env)
    for line in git(repo, "ls-tree", "-r", "-z", rev).split("\0"):
        if not line:
            continue
        meta, _, path = line.partition("\t")
        mode, _kind, obj = meta.split()
        if mode != "160000":
            continue
        sub = repo / path
        if not (sub / ".git").exists():
            raise OrchestratorError(
                f"submodule {path} is not checked out",
                file=sub,
                hint="run `git submodule update --init --recursive` in the checkout",
            )
        if run_git(sub, "cat-file", "-e", f"{obj}^{{commit}}").returncode != 0:
            raise OrchestratorError(
                f"submodule {path} does not have commit {obj}, which {rev[:12]} records",
                file=sub,
                hint="run `git submodule update --init --recursive` in the checkout",
            )
        export_revision(sub, obj, dest / path)


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
        # uncommitted changes are not pinned: the command says so
        self.dirty = bool(
            git(
                checkout,
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--ignore-submodules=dirty",
            )
        )
        self.last_modified = int(git(checkout, "log", "-1", "--format=%ct", self.rev))
        self.rev_count = int(git(checkout, "rev-list", "--count", self.rev))
        self.tree_dir = workdir / "source"
        export_revision(checkout, self.rev, self.tree_dir)
        self.nar_hash = hash_path(self.tree_dir)

    def locked(self, previous: LockedAttrs) -> LockedAttrs:
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


def lock_with_nix(flake: FlakeFiles, rev: str | None) -> tuple[LockedAttrs, Path, str]:
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
    if not REV_RE.fullmatch(got):
        raise NixError(f"Nix locked live-bootstrap without a revision: {locked}")
    store = _from_store(LockedInput(locked=locked, original=node.get("original", {})))
    if store is None:
        raise NixError(f"Nix locked live-bootstrap {got} but its tree is not in the store")
    if rev is None:
        nix_text = flake.nix_with_rev(got)
    return locked, store, nix_text


# -- the update --------------------------------------------------------------------------------


@dataclass
class NewPin:
    """The revision to pin: its tree, and (unless a report-only dry run) the new lock."""

    tree: SourceTree
    locked: LockedAttrs | None = None
    nix_text: str | None = None
    checkout: LockedCheckout | None = None


def new_pin(
    flake: FlakeFiles,
    rev: str | None,
    to_path: Path | None,
    workdir: Path,
    say: Say,
    *,
    dry_run: bool,
) -> NewPin:
    """The tree and lock of ``--to-path CHECKOUT``, else of ``--rev REV`` (None: the newest
    commit of the locked ref) fetched with Nix."""
    if rev is not None and not REV_RE.fullmatch(rev):
        raise OrchestratorError(f"--rev {rev!r} is not a 40-digit hexadecimal revision")
    if to_path is None:
        ref = rev or f"(newest commit of {flake.locked.get('ref', 'HEAD')})"
        say(f"locking live-bootstrap {ref} with Nix")
        locked, store, nix_text = lock_with_nix(flake, rev)
        return NewPin(SourceTree.open(store, commit=locked["rev"]), locked, nix_text)
    if not (to_path / "steps" / "manifest").is_file():
        raise OrchestratorError("not a live-bootstrap tree (no steps/manifest)", file=to_path)
    if is_git_checkout(to_path):
        checkout = LockedCheckout(to_path, workdir)
        if checkout.dirty:
            say(
                f"note: {to_path} has uncommitted changes; pinning its HEAD "
                f"{checkout.rev[:12]} as committed"
            )
        say(
            f"checkout {to_path}: {checkout.rev} (revCount {checkout.rev_count}, "
            f"narHash {checkout.nar_hash})"
        )
        return NewPin(
            SourceTree.open(checkout.tree_dir, commit=checkout.rev),
            checkout.locked(flake.locked),
            flake.nix_with_rev(checkout.rev),
            checkout,
        )
    if dry_run:
        say(f"{to_path} is not a git checkout: report only (--dry-run)")
        return NewPin(SourceTree.open(to_path))
    raise OrchestratorError(
        "not a git checkout: its revision cannot be locked",
        file=to_path,
        hint="pass a git checkout with submodules, or add --dry-run for the report alone",
    )


def prepare(
    old_tree: SourceTree,
    new_tree: SourceTree,
    steps_dir: Path,
    profile: str,
    say: Say,
    *,
    dry_run: bool,
) -> tuple[dict[str, str] | None, ChangeReport]:
    """Everything that can fail on the new revision, before anything is written: steps/ rendered
    in memory (None when only a dry run's report can be given), and the change report."""
    old_chain = load_chain(old_tree, profile)
    new_chain = load_chain(new_tree, profile)
    gen_chain = new_chain if profile == "nix" else load_chain(new_tree, "nix")
    files: dict[str, str] | None
    try:
        files, _ = render_all(
            new_tree, apply_overrides(gen_chain, load_overrides(steps_dir)), steps_dir
        )
    except Stage0Drift as exc:
        if not dry_run:
            raise
        # the report is still worth reading; the update itself would stop here
        say(f"the update would fail: {exc}")
        files = None
    return files, compare_chains(old_tree, old_chain, new_tree, new_chain)


def drift_of(files: dict[str, str], steps_dir: Path) -> Drift:
    return compare(files, read_existing(steps_dir), [])


def apply(flake: FlakeFiles, steps_dir: Path, files: dict[str, str], pin: NewPin, say: Say) -> None:
    """flake.nix, flake.lock and steps/ swapped in together, or not at all."""
    assert pin.locked is not None
    assert pin.nix_text is not None
    if pin.checkout is not None:
        stored = pin.checkout.add_to_store()
        say(f"added the tree to the Nix store: {stored}")
    txn = Transaction()
    txn.replace_steps(steps_dir, files)
    txn.write(flake.nix_path, pin.nix_text)
    txn.write(flake.lock_path, flake.lock_with(pin.locked))
    txn.commit()
