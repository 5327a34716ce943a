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

from .errors import NixError

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
) -> subprocess.CompletedProcess[str]:
    cmd = [nix_binary(), *base_args(offline=offline, sandbox=sandbox), *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=input,
        text=True,
        capture_output=capture,
    )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-30:])
        raise NixError(f"`nix {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def nix_json(args: Sequence[str], **kw: Any) -> Any:
    proc = run_nix([*args, "--json"], **kw)
    return json.loads(proc.stdout)
