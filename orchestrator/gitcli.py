"""The one place that runs ``git``: never prompting, never reading the system's git config, so a
checkout's answers do not depend on the machine (as ``nixcli`` is for ``nix``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from orchestrator.errors import OrchestratorError

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
TIMEOUT = 300  # seconds; a local git command that takes longer is stuck


def run_git(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``git -C repo ARGS`` with its output captured; the caller reads the return code."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
        timeout=TIMEOUT,
    )


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``git -C repo ARGS``'s stdout, stripped; a failure is an error naming the command."""
    proc = run_git(repo, *args, env=env)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or proc.returncode
        raise OrchestratorError(f"git {' '.join(args)} failed in {repo}: {last}")
    return proc.stdout.strip()


def git_or_none(repo: Path, *args: str) -> str | None:
    """``git -C repo ARGS``'s stdout, or None when git is missing, fails or prints nothing."""
    try:
        proc = run_git(repo, *args)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None


def is_git_checkout(path: Path) -> bool:
    """Is ``path`` the top of a git work tree (not just inside one)?"""
    if shutil.which("git") is None:
        return False
    top = git_or_none(path, "rev-parse", "--show-toplevel")
    return top is not None and Path(top).resolve() == path.resolve()
