"""Running the ``nix`` CLI: one place that knows the flags every call needs.

Works with Nix 2.8 (CI) and current Nix: experimental features are passed per call, nothing is
substituted unless the caller asks, and stderr is kept for error messages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import NixError

FEATURES = ["--extra-experimental-features", "nix-command flakes"]


def nix_binary() -> str:
    found = shutil.which("nix")
    if not found:
        raise NixError(
            "the nix command is not installed",
            hint="install Nix (on Debian: apt-get install -y nix-bin)",
        )
    return found


def base_args(*, offline: bool = True, sandbox: bool | None = None) -> list[str]:
    args = [*FEATURES]
    if offline:
        args += ["--option", "substituters", ""]
    if sandbox is not None:
        args += ["--option", "sandbox", "true" if sandbox else "false"]
    return args


def run_nix(
    args: Sequence[str],
    *,
    offline: bool = True,
    sandbox: bool | None = None,
    check: bool = True,
    capture: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run nix; ``env`` adds to the environment, ``timeout`` raises TimeoutExpired."""
    cmd = [nix_binary(), *base_args(offline=offline, sandbox=sandbox), *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=input,
        text=True,
        capture_output=capture,
        env={**os.environ, **env} if env else None,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-30:])
        raise NixError(f"`nix {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def nix_json(args: Sequence[str], **kw: Any) -> Any:
    proc = run_nix([*args, "--json"], **kw)
    return json.loads(proc.stdout)


# -- additions for build / distfiles seed / audit ------------------------------------------------


def nix_command(
    args: Sequence[str], *, offline: bool = True, sandbox: bool | None = None
) -> list[str]:
    """The full argv of a ``nix`` call, for callers that stream its output (``build``)."""
    return [nix_binary(), *base_args(offline=offline, sandbox=sandbox), *args]


def nix_version() -> tuple[int, ...]:
    """``nix --version`` as a tuple of ints, e.g. ``(2, 8, 0)``."""
    proc = subprocess.run([nix_binary(), "--version"], capture_output=True, text=True)
    digits = []
    for part in proc.stdout.strip().split()[-1].split("."):
        num = "".join(c for c in part if c.isdigit()) if part else ""
        if not num:
            break
        digits.append(int(num))
    return tuple(digits)


def run_nix_store(
    args: Sequence[str], *, check: bool = True, cwd: str | os.PathLike[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``nix-store`` (the legacy CLI: ``--add-fixed``, ``--check-validity``)."""
    store = shutil.which("nix-store")
    if not store:
        raise NixError("the nix-store command is not installed", hint="install Nix")
    proc = subprocess.run([store, *args], cwd=cwd, text=True, capture_output=True)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-30:])
        raise NixError(f"`nix-store {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def invalid_paths(paths: Sequence[str]) -> set[str]:
    """The subset of ``paths`` that is not a valid store path (not built, not added)."""
    out: set[str] = set()
    paths = list(paths)
    for i in range(0, len(paths), 500):
        proc = run_nix_store(["--check-validity", "--print-invalid", *paths[i : i + 500]])
        out.update(line.strip() for line in proc.stdout.splitlines() if line.strip())
    return out


def add_fixed_sha256(path: str | os.PathLike[str]) -> str:
    """``nix-store --add-fixed sha256 FILE``: the store path of a flat sha256 fixed output
    named after the file (what ``builtin:fetchurl`` with that name and hash produces)."""
    proc = run_nix_store(["--add-fixed", "sha256", os.fspath(path)])
    return proc.stdout.strip().splitlines()[-1]


def show_derivation(
    installables: Sequence[str],
    *,
    recursive: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Derivations as JSON keyed by ``.drv`` path: ``nix show-derivation`` on Nix 2.8,
    ``nix derivation show`` on current Nix (both with ``-r`` for the closure)."""
    sub = ["derivation", "show"] if nix_version() >= (2, 15) else ["show-derivation"]
    args = [*sub, *(["-r"] if recursive else []), *installables]
    proc = run_nix(args, cwd=cwd)
    return json.loads(proc.stdout)
