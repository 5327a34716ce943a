"""``orchestrator checkout verify PATH``: is this tree exactly the pinned live-bootstrap input?

A local checkout given as ``--live-bootstrap PATH`` reaches Nix as ``path:PATH``: Nix copies the
whole directory and hashes it (NAR, sha256). The chain then has the same derivations as with
the pinned input exactly when that hash is the ``narHash`` that ``flake.lock`` records for it.
This command computes it with ``nix hash path`` and compares. Exit 0: equal; 1: different.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from orchestrator import nixcli
from orchestrator.commands import options
from orchestrator.errors import OrchestratorError
from orchestrator.upstream.locate import INPUT_NAME, REPO_ROOT, read_lock

err = Console(stderr=True, highlight=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("checkout", help="check a local live-bootstrap tree against flake.lock")
    csub = p.add_subparsers(dest="checkout_command", required=True, metavar="ACTION")
    v = csub.add_parser(
        "verify",
        help="nix hash path PATH == the narHash flake.lock pins (exit 1 if not)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    v.add_argument("path", metavar="PATH", help="the tree to check (what --live-bootstrap takes)")
    v.add_argument(
        "--lock",
        metavar="FILE",
        type=Path,
        default=REPO_ROOT / "flake.lock",
        help="flake.lock to compare with (default: this repository's)",
    )
    options.json_output(v, "the result as JSON on stdout")
    v.set_defaults(func=run_verify)


def _git_dirs(root: Path) -> list[str]:
    """``.git`` entries in the tree: a clone's, and each submodule's (a file there)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".git"))


def run_verify(args: argparse.Namespace) -> int:
    root = Path(args.path).expanduser()
    if not root.is_dir():
        raise OrchestratorError("not a directory", file=args.path)
    lock = read_lock(args.lock.parent) if args.lock.name == "flake.lock" else None
    if lock is None:
        raise OrchestratorError("the lock file must be named flake.lock", file=args.lock)
    expected = str(lock.locked.get("narHash") or "")
    if not expected:
        raise OrchestratorError(f"no narHash for the {INPUT_NAME} input", file=args.lock)
    actual = nixcli.hash_path(root.resolve())
    git = _git_dirs(root)
    ok = actual == expected
    result = {
        "path": str(root),
        "rev": lock.rev,
        "expected": expected,
        "actual": actual,
        "matches": ok,
        "git_dirs": git,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    if ok:
        err.print(
            f"{root} is the pinned {INPUT_NAME} input ({(lock.rev or '?')[:12]}): {actual}",
            markup=False,
            soft_wrap=True,
        )
        return 0
    why = (
        f"it holds {len(git)} .git entr{'y' if len(git) == 1 else 'ies'} ({', '.join(git[:3])}"
        f"{', …' if len(git) > 3 else ''}), which the flake input does not: Nix would copy them"
        if git
        else "some file differs (another revision, a missing submodule, a local change)"
    )
    error = OrchestratorError(
        f"{root} is not the pinned {INPUT_NAME} input ({(lock.rev or '?')[:12]}): "
        f"nix hash path gives {actual}, flake.lock pins {expected}; {why}",
        hint="README, section Offline: check out that revision with its submodules, then "
        "remove the .git entries",
    )
    error.exit_code = 1
    error.json_printed = bool(args.json)  # type: ignore[attr-defined]
    raise error
