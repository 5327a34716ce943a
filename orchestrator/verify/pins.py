"""``verify --against-live-bootstrap``: every step's outputs against live-bootstrap's own pins.

* bash era: the package tarball ``/external/repo/<pkg>_<rev>.tar.bz2`` a ``build`` step leaves
  against its line in ``steps/SHA256SUMS.pkgs`` (the generated step carries it as
  ``package = { file; sha256; }``), as helpers.sh's ``src_checksum`` checks it;
* kaem era: every installed file that ``steps/<pkg>/<pkg>[.<arch>].checksums`` pins (the
  generated step's ``checksums``), as the pass script's ``sha256sum -c`` checks it.

Where the files are: a step's output holds the files it added or changed under ``tree/``, rooted
at ``/`` (plus ``deletions`` and ``state/``; the runner's layout, ``docs/runner.md``), so
``/usr/bin/mes-m2`` of step ``mes-0.27.1-pass1`` is ``<out>/tree/usr/bin/mes-m2``. Nothing is
built here: a step whose output is not in the store is reported ``not-built``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from orchestrator import nixcli
from orchestrator.errors import InputUnavailable, NixError, OrchestratorError
from orchestrator.formats.filehash import sha256_file
from orchestrator.formats.inroot import LinkLoop, OutsideRoot, resolve_in_root
from orchestrator.nixstr import flake_installable
from orchestrator.upstream.chain import Chain, StepInfo
from orchestrator.upstream.names import PATH_RE

TREE_DIR = "tree"  # where a step output keeps its files, rooted at /
REPO_DIR = "/external/repo"  # where helpers.sh leaves package tarballs

Status = Literal["ok", "mismatch", "missing", "not-built", "unpinned", "no-pins"]


class PinCheck(BaseModel):
    step: str
    index: int  # from 1
    era: str
    kind: Literal["package", "installed", "none"]
    file: str | None  # path in the step's root filesystem
    expected: str | None
    actual: str | None
    status: Status
    output: str | None  # the step's store path
    pinned_in: str | None  # steps/SHA256SUMS.pkgs or the checksums file


class Report(BaseModel):
    target: str
    checks: list[PinCheck]
    counts: dict[str, int]

    def exit_code(self, *, strict: bool = False) -> int:
        if self.counts.get("mismatch", 0) or self.counts.get("missing", 0):
            return 1
        if strict and self.counts.get("not-built", 0):
            return 2
        return 0


def in_output(output: str, path: str) -> Path | None:
    """Where the step output keeps ``path`` of the step's root filesystem.

    Symlinks below ``<out>/tree`` are followed as the chroot would see them (an absolute target
    starts again at ``<out>/tree``) by the shared resolver (formats/inroot.py), which refuses a
    ``..`` above the root, so a link in a step's output can never make us hash a file of this
    machine. A link whose target another layer provides resolves to a path missing here: the
    check says ``missing``, never ``ok`` for the wrong file. None for a link loop or a link
    that climbs out.
    """
    if not PATH_RE.fullmatch(path):
        # the model only lets grammar-conforming paths through; never leave the output
        raise OrchestratorError(f"pinned path {path!r} is not a plain absolute path")
    # nixcli.real_path: in a chroot store the output is under the store's root on disk
    root = Path(nixcli.real_path(output)) / TREE_DIR

    def read_link(rel: str) -> str | None:
        here = root / rel
        return os.readlink(here) if here.is_symlink() else None

    try:
        rel = resolve_in_root(path, read_link, absolute="chroot")
    except (OutsideRoot, LinkLoop):
        return None  # no file of this output to hash
    return root / rel if rel else root


def _check_file(output: str | None, path: str, expected: str | None) -> tuple[str | None, Status]:
    if expected is None:
        return None, "unpinned"
    if output is None:
        return None, "not-built"
    f = in_output(output, path)
    if f is None or not f.is_file():
        return None, "missing"
    actual = sha256_file(f)
    return actual, "ok" if actual == expected.lower() else "mismatch"


def step_checks(info: StepInfo, output: str | None) -> list[PinCheck]:
    """The checks of one step (its pins were parsed when the chain was loaded)."""
    step = info.step
    base = {
        "step": step.attr_name,
        "index": step.index + 1,
        "era": step.era,
        "output": output,
    }
    no_pins = PinCheck(
        **base, kind="none", file=None, expected=None, actual=None, status="no-pins", pinned_in=None
    )
    if step.directive != "build":
        return [no_pins]
    if step.era == "bash":
        if info.package_file is None:
            return []
        path = f"{REPO_DIR}/{info.package_file}"
        actual, status = _check_file(output, path, info.package_sha256)
        return [
            PinCheck(
                **base,
                kind="package",
                file=path,
                expected=info.package_sha256,
                actual=actual,
                status=status,
                pinned_in="steps/SHA256SUMS.pkgs" if info.package_sha256 else None,
            )
        ]
    if info.checksums_file is None:
        return [no_pins]
    # parsed (and every path checked against the grammar of names.py) when the chain loaded
    out = []
    for pin in info.pins:
        path = pin.path  # absolute, no '.' or '..' component: always inside the step output
        actual, status = _check_file(output, path, pin.sha256)
        out.append(
            PinCheck(
                **base,
                kind="installed",
                file=path,
                expected=pin.sha256,
                actual=actual,
                status=status,
                pinned_in=f"{info.checksums_file}:{pin.line}",
            )
        )
    return out


def current_system() -> str:
    proc = nixcli.run_nix(["eval", "--impure", "--raw", "--expr", "builtins.currentSystem"])
    return proc.stdout.strip()


def step_outputs(flake: str, attrs: list[str]) -> dict[str, str | None]:
    """Output paths of the step packages that exist in the flake and are in the store."""
    # the names reach Nix as JSON data; the program is nixexpr/step-outputs.nix
    apply = nixcli.program("step-outputs", attrs)
    installable = flake_installable(flake, ["packages", current_system()])
    try:
        paths = nixcli.nix_json(["eval", installable, "--apply", apply])
    except InputUnavailable:
        raise
    except NixError as exc:
        raise OrchestratorError(
            f"cannot evaluate the step outputs of {flake}: {exc.message}",
            hint="is the runner wired into the flake's packages?",
        ) from None
    present = [p for p in paths.values() if p]
    invalid = nixcli.invalid_paths(present) if present else set()
    return {a: (p if p and p not in invalid else None) for a, p in paths.items()}


def verify(chain: Chain, target: str, outputs: dict[str, str | None]) -> Report:
    attrs = [s.step.attr_name for s in chain.steps]
    steps = chain.steps
    if target in attrs:
        steps = steps[: attrs.index(target) + 1]
    checks: list[PinCheck] = []
    for info in steps:
        checks.extend(step_checks(info, outputs.get(info.step.attr_name)))
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.status] = counts.get(c.status, 0) + 1
    return Report(target=target, checks=checks, counts=dict(sorted(counts.items())))
