"""A package pin mismatch as a report, not Nix's raw error (early cutoff, issue 20).

A pinned step fails when the tarball it packs is not the one ``steps/SHA256SUMS.pkgs`` pins:
upstream's ``src_checksum`` fails the script, ns-run checks the pin again and prints
``checksum mismatch for /external/repo/<file>`` with the expected and actual hashes; a package
fetched from a cache fails Nix's fixed-output check (``hash mismatch in fixed-output
derivation``). Either way ``orchestrator build`` names the step, the pin's file and line, both
hashes, and where the tarball is: with ``--keep-failed`` Nix leaves the failed step's output on
disk (not valid, not registered) at its store path, so the tarball is at
``<output>/tree/external/repo/<file>`` for ``diffoscope`` against a good build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.build.nixlog import BuildLog, BuildRecord
from orchestrator.build.plan import Plan
from orchestrator.build.progress import StepIndex
from orchestrator.errors import OrchestratorError
from orchestrator.formats.hashes import parse_hash
from orchestrator.upstream.checksums import parse_checksums
from orchestrator.upstream.locate import read_tree

SUMS = "steps/SHA256SUMS.pkgs"
_NS_RUN = re.compile(r"checksum mismatch for /external/repo/(?P<file>[A-Za-z0-9+_?=.-]+)\s*$")
_EXPECTED = re.compile(r"^\s*expected:\s+(?P<h>[0-9a-f]{64})\s*$")
_ACTUAL = re.compile(r"^\s*actual:\s+(?P<h>[0-9a-f]{64})\s*$")
_FOD = re.compile(
    r"hash mismatch in fixed-output derivation '(?P<drv>/nix/store/[0-9a-z]{32}-(?P<file>[^']+?)\.drv)'"
)
_SPECIFIED = re.compile(r"specified:\s+(?P<h>\S+)")
_GOT = re.compile(r"got:\s+(?P<h>\S+)")


class PinMismatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str  # the package tarball, <pkg>_<rev>.tar.bz2
    expected: str  # hex sha256
    actual: str
    drv: str  # the failed derivation


def _hex(text: str) -> str | None:
    try:
        return parse_hash(text, "sha256").hex
    except (OrchestratorError, ValueError):
        return None


def find_mismatches(failed: Iterable[BuildRecord], errors: Iterable[str]) -> list[PinMismatch]:
    """The pin mismatches in the failed builds' logs (ns-run's) and in Nix's error messages."""
    found: list[PinMismatch] = []
    for rec in failed:
        tail = list(rec.tail)
        for i, line in enumerate(tail):
            m = _NS_RUN.search(line)
            if not m:
                continue
            after = tail[i + 1 : i + 3]
            exp = next((e.group("h") for e in map(_EXPECTED.match, after) if e), None)
            act = next((a.group("h") for a in map(_ACTUAL.match, after) if a), None)
            if exp and act:
                found.append(
                    PinMismatch(file=m.group("file"), expected=exp, actual=act, drv=rec.drv_path)
                )
    for text in errors:
        m = _FOD.search(text)
        spec, got = _SPECIFIED.search(text), _GOT.search(text)
        if m and spec and got:
            exp, act = _hex(spec.group("h")), _hex(got.group("h"))
            if exp and act:
                found.append(
                    PinMismatch(file=m.group("file"), expected=exp, actual=act, drv=m.group("drv"))
                )
    return found


def pin_line(live_bootstrap: str | None, file: str) -> int | None:
    tree = read_tree(live_bootstrap)
    for pin in parse_checksums(tree.read_text(SUMS), SUMS, names="file"):
        if pin.path == file:
            return pin.line
    return None


def report(
    m: PinMismatch,
    step: str | None,
    line: int | None,
    output: str | None,
    *,
    kept: bool,
) -> str:
    where = f"{SUMS} line {line}" if line is not None else f"{SUMS} (no line names it)"
    lines = [
        f"pin mismatch: {'step ' + step if step else m.drv} packed {m.file}, which {where} pins",
        f"  expected: {m.expected}",
        f"  actual:   {m.actual}",
    ]
    tarball = f"{output}/tree/external/repo/{m.file}" if output else None
    if tarball and kept and Path(tarball).is_file():
        lines.append(f"the tarball is kept at {tarball} (not a valid store path: compare it,")
        lines.append("e.g. with diffoscope, against a good build's package)")
    elif tarball:
        lines.append(f"rerun with --keep-failed to keep the tarball (Nix leaves it at {tarball})")
    return "\n".join(lines)


def pin_reports(
    failed: list[BuildRecord],
    errors: list[str],
    live_bootstrap: str | None,
    steps: dict[str, str],
    outputs: dict[str, str],
    *,
    kept: bool,
) -> list[str]:
    """Reports for every pin mismatch of a failed build. ``steps``: drv path -> step attribute;
    ``outputs``: drv path -> its output path."""
    return [
        report(m, steps.get(m.drv), pin_line(live_bootstrap, m.file), outputs.get(m.drv), kept=kept)
        for m in find_mismatches(failed, errors)
    ]


def for_build(
    log: BuildLog, plan: Plan, index: StepIndex, live_bootstrap: str | None, *, kept: bool
) -> list[str]:
    """What ``orchestrator build`` prints first when a build failed on a pin."""
    failed = log.failures()
    steps: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for rec in failed:
        step = index.for_name(rec.name)
        if step is not None:
            steps[rec.drv_path] = step.attr
        drv = plan.closure.get(rec.drv_path)
        out = drv.outputs.get("out") if drv is not None else None
        if out is not None and out.path:
            outputs[rec.drv_path] = out.path
    return pin_reports(failed, log.errors, live_bootstrap, steps, outputs, kept=kept)
