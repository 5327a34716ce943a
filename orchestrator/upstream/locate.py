"""Finding the live-bootstrap tree to read, in a fixed order of preference.

1. ``--live-bootstrap PATH`` (a checkout, or a data-only snapshot);
2. the ``LIVE_BOOTSTRAP`` environment variable;
3. the pinned flake input (``flake.lock``), when Nix already has it in the store -- Nix
   answers from the store for a locked input with a narHash, without touching the network;
4. a data-only snapshot of exactly the pinned revision (a directory whose ``COMMIT`` names it)
   under ``$ORCHESTRATOR_SNAPSHOTS`` or the project's shared fixtures beside the repository.

Commands that only read the chain (plan, distfiles list) do not need any of this: by default they
read the committed steps/upstream.json.

The same ``--live-bootstrap PATH`` (or ``$LIVE_BOOTSTRAP``) is also what Nix evaluates: every
command that evaluates or builds the chain passes it as ``--override-input live-bootstrap
path:PATH`` (:func:`nix_input_args`, installed for the whole command by ``cli.main``), and a
pinned input that cannot be fetched becomes one clear error naming the option
(:func:`explain_fetch_failure`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from orchestrator.errors import InputUnavailable, NixError, OrchestratorError, ParseError
from orchestrator.nixcli import program, run_nix
from orchestrator.nixstr import path_flake_ref
from orchestrator.upstream.tree import SNAPSHOT_FILE, SourceTree

REPO_ROOT = Path(__file__).resolve().parents[2]
INPUT_NAME = "live-bootstrap"
ENV_VAR = "LIVE_BOOTSTRAP"
OPTION = "--live-bootstrap"


def chosen_tree(explicit: str | os.PathLike[str] | None) -> str | None:
    """``--live-bootstrap`` if given, else ``$LIVE_BOOTSTRAP``, else None (the pinned input)."""
    if explicit:
        return os.fspath(explicit)
    return os.environ.get(ENV_VAR) or None


def nix_input_args(explicit: str | os.PathLike[str] | None) -> list[str]:
    """What every nix call of the command gets: the input override, if a tree was chosen."""
    path = chosen_tree(explicit)
    if path is None:
        return []
    where = Path(path).expanduser()
    if not where.is_dir():
        raise OrchestratorError(
            f"{OPTION} {path}: not a directory",
            hint="a live-bootstrap checkout with submodules (README: Offline)",
        )
    return ["--override-input", INPUT_NAME, path_flake_ref(str(where.resolve()))]


def explain_fetch_failure(stderr: str) -> NixError | None:
    """Nix failed while fetching the pinned live-bootstrap input: say so in one line.

    Nix's own message names neither the input nor a way out (``Could not resolve host``, or
    ``program 'git' failed``). A failure that mentions the input's URL or a git fetch is this one
    when the pinned input is indeed not in the store (asked again, without the network)."""
    try:
        lock = read_lock()
    except OrchestratorError:
        return None
    url = str(lock.locked.get("url") or "")
    bare = url.removeprefix("git+").split("?")[0]
    fetching = (bare and bare in stderr) or "program 'git' failed" in stderr
    if not fetching or _from_store(lock) is not None:
        return None
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    why = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1] if lines else "")
    why = why.removeprefix("fatal: ").split("': ")[-1]
    return InputUnavailable(
        f"the pinned live-bootstrap input ({(lock.rev or '?')[:12]}) is not in the Nix store and "
        f"cannot be fetched ({why}): pass {OPTION} PATH (or set ${ENV_VAR}) to a checkout of it",
        hint="README, section Offline: how to assemble a checkout with submodules at that revision",
    )


class LockedInput(BaseModel):
    locked: dict[str, object]
    original: dict[str, object]

    @property
    def rev(self) -> str | None:
        rev = self.locked.get("rev")
        return str(rev) if rev else None


def read_lock(repo: Path = REPO_ROOT) -> LockedInput:
    lock_path = repo / "flake.lock"
    try:
        data = json.loads(lock_path.read_text())
        node = data["nodes"][data["nodes"][data["root"]]["inputs"][INPUT_NAME]]
        return LockedInput(locked=node["locked"], original=node["original"])
    except FileNotFoundError:
        raise OrchestratorError("no flake.lock", file=lock_path) from None
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ParseError(f"cannot read the {INPUT_NAME} input: {exc}", file=lock_path) from None


def _from_store(lock: LockedInput) -> Path | None:
    """The pinned input's store path if Nix has it already (never downloads)."""
    expr = program("fetch-tree", lock.locked)
    try:
        proc = run_nix(
            ["--option", "connect-timeout", "1", "eval", "--raw", "--impure", "--expr", expr],
            check=False,
            timeout=60,
            # never prompt, never reach for the network through git
            env={"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "file"},
        )
    except (NixError, OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    path = Path(proc.stdout.strip())
    return path if (path / "steps" / "manifest").is_file() else None


def _snapshot_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("ORCHESTRATOR_SNAPSHOTS", "").split(os.pathsep) if p]
    dirs.append(REPO_ROOT.parent / "shared" / "fixtures" / "live-bootstrap")
    return dirs


def _from_snapshots(rev: str) -> Path | None:
    for base in _snapshot_dirs():
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            commit = d / "COMMIT"
            # is_file: never a FIFO or device; bytes: a non-UTF-8 COMMIT is just another commit
            if commit.is_file() and commit.read_bytes().split()[:1] == [rev.encode()]:
                return d
    return None


def _quiet(message: str) -> None:
    """No progress lines."""


def locate_tree(
    explicit: str | os.PathLike[str] | None, *, log: Callable[[str], None] | None = None
) -> SourceTree:
    say = log or _quiet
    if explicit:
        say(f"reading live-bootstrap from {explicit}")
        return SourceTree.open(Path(explicit))
    env = os.environ.get(ENV_VAR)
    if env:
        say(f"reading live-bootstrap from $LIVE_BOOTSTRAP ({env})")
        return SourceTree.open(env)
    lock = read_lock()
    store = _from_store(lock)
    if store is not None:
        say(f"reading the pinned live-bootstrap input {lock.rev} from {store}")
        return SourceTree.open(store, commit=lock.rev)
    if lock.rev:
        snap = _from_snapshots(lock.rev)
        if snap is not None:
            say(f"reading a data-only snapshot of the pinned revision {lock.rev} ({snap})")
            return SourceTree.open(snap)
    raise OrchestratorError(
        f"the pinned live-bootstrap input ({lock.rev}) is not available offline",
        hint=f"pass {OPTION} PATH (or set ${ENV_VAR}) to a checkout with submodules, or run "
        "`nix flake archive` once with network access",
    )


def committed_tree(steps_dir: Path | None = None) -> SourceTree:
    """The embedded default: the snapshot committed with steps/ (works offline, fresh clone)."""
    from orchestrator.upstream.tree import Snapshot

    steps_dir = steps_dir or REPO_ROOT / "steps"
    path = steps_dir / SNAPSHOT_FILE
    try:
        snap = Snapshot.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise OrchestratorError(
            "no committed snapshot", file=path, hint="run `python -m orchestrator generate`"
        ) from None
    except ValueError as exc:  # pydantic's ValidationError, invalid JSON
        raise OrchestratorError(
            f"not a snapshot: {str(exc).splitlines()[0]}",
            file=path,
            hint="steps/upstream.json is generated: run `python -m orchestrator generate`",
        ) from None
    return snap.to_tree(steps_dir)


def read_tree(
    explicit: str | os.PathLike[str] | None, *, log: Callable[[str], None] | None = None
) -> SourceTree:
    """For read-only commands: ``--live-bootstrap``/``$LIVE_BOOTSTRAP`` if given, else the
    committed snapshot."""
    chosen = chosen_tree(explicit)
    if chosen:
        return locate_tree(chosen, log=log)
    return committed_tree()
