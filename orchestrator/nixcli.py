"""Running the ``nix`` CLI: one place that knows the flags every call needs.

Works with Nix 2.8 (CI) and current Nix: experimental features are passed per call, nothing is
substituted unless the caller asks, and stderr is kept for error messages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import NixError
from orchestrator.nixstr import NixText, nix_program

FEATURES = ["--extra-experimental-features", "nix-command flakes"]
PROGRAMS = Path(__file__).resolve().parent / "nixexpr"  # the Nix programs the CLI runs


def program(name: str, data: object) -> NixText:
    """The Nix program ``nixexpr/<name>.nix`` applied to ``data`` (JSON), for ``--expr`` or
    ``--apply``."""
    return nix_program((PROGRAMS / f"{name}.nix").read_text(), data)


# Set for the length of one CLI command (``cli.main`` -> :func:`flake_inputs`): arguments every
# nix call gets (``--override-input live-bootstrap path:…``; nix accepts them on any command and
# ignores them where no flake is evaluated), and what turns a failed fetch into a clear error.
_INPUT_ARGS: list[str] = []
_EXPLAIN: list[Callable[[str], NixError | None]] = []


_INPUT_ERROR: list[Exception] = []  # the override cannot be expressed: raised on first use


@contextmanager
def flake_inputs(
    args: Sequence[str],
    explain: Callable[[str], NixError | None] | None = None,
    error: Exception | None = None,
) -> Iterator[None]:
    saved = (list(_INPUT_ARGS), list(_EXPLAIN), list(_INPUT_ERROR))
    _INPUT_ARGS[:] = list(args)
    _EXPLAIN[:] = [explain] if explain else []
    _INPUT_ERROR[:] = [error] if error else []
    try:
        yield
    finally:
        _INPUT_ARGS[:], _EXPLAIN[:], _INPUT_ERROR[:] = saved


def _input_args(args: Sequence[str]) -> list[str]:
    if not _takes_flakes(args):
        return []
    if _INPUT_ERROR:
        raise _INPUT_ERROR[0]
    return list(_INPUT_ARGS)


# nix subcommands that evaluate installables (and so take --override-input)
_FLAKE_COMMANDS = {"build", "eval", "path-info", "show-derivation", "derivation", "log", "flake"}


def _takes_flakes(args: Sequence[str]) -> bool:
    it = iter(args)
    for a in it:
        if a == "--option":  # NAME VALUE
            next(it, None)
            next(it, None)
        elif not a.startswith("-"):
            return a in _FLAKE_COMMANDS
    return False


def explain_failure(stderr: str) -> NixError | None:
    """A clearer error for a known failure in nix's stderr (the pinned input not fetchable)."""
    for explain in _EXPLAIN:
        found = explain(stderr)
        if found is not None:
            return found
    return None


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
    inputs: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run nix; ``env`` adds to the environment, ``timeout`` raises TimeoutExpired.
    ``inputs=False``: without the command's input overrides (for calls that take no flake)."""
    extra = _input_args(args) if inputs else []
    cmd = [nix_binary(), *base_args(offline=offline, sandbox=sandbox), *args, *extra]
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
        explained = explain_failure(proc.stderr or "")
        if explained is not None:
            raise explained
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-30:])
        raise NixError(f"`nix {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def nix_json(args: Sequence[str], **kw: Any) -> Any:
    proc = run_nix([*args, "--json"], **kw)
    return json.loads(proc.stdout)


# -- where store paths are on disk ---------------------------------------------------------------
_ROOTS: dict[tuple[str | None, ...], str] = {}


def _root_of(store: str) -> str:
    """The directory a ``store`` setting puts /nix/store under: "" for the default store."""
    if store.startswith("/"):
        return store.rstrip("/")
    _, _, query = store.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "root" and value:
            return urllib.parse.unquote(value).rstrip("/")
    return ""


def store_root() -> str:
    """The chroot of the store Nix uses here (``--store ROOT``, ``store = ROOT`` in nix.conf or
    $NIX_CONFIG): store paths are at ROOT/nix/store/… on disk. "" for /nix/store itself."""
    key = tuple(os.environ.get(v) for v in ("NIX_CONFIG", "NIX_REMOTE", "NIX_CONF_DIR", "HOME"))
    if key not in _ROOTS:
        proc = run_nix(["show-config", "--json"], check=False, inputs=False)
        try:
            store = str(json.loads(proc.stdout)["store"]["value"])
        except (ValueError, KeyError, TypeError):
            store = ""
        _ROOTS[key] = _root_of(store)
    return _ROOTS[key]


def real_path(path: str | os.PathLike[str]) -> str:
    """Where a store path's bytes are on disk (a chroot store keeps them under its root)."""
    text = os.fspath(path)
    root = store_root() if text.startswith("/nix/store/") else ""
    return root + text


# -- additions for build / distfiles seed / audit ------------------------------------------------


def nix_command(
    args: Sequence[str], *, offline: bool = True, sandbox: bool | None = None
) -> list[str]:
    """The full argv of a ``nix`` call, for callers that stream its output (``build``)."""
    extra = _input_args(args)
    return [nix_binary(), *base_args(offline=offline, sandbox=sandbox), *args, *extra]


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


def hash_path(path: str | os.PathLike[str]) -> str:
    """``nix hash path``: the SRI sha256 of a tree's NAR serialisation (a lock's narHash)."""
    args = ["hash", "path", "--type", "sha256", "--sri", os.fspath(path)]
    return run_nix(args, inputs=False).stdout.strip()


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
    derivations: dict[str, Any] = json.loads(proc.stdout)
    return derivations
