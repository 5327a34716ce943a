"""The chain page of ``orchestrator report --html DIR [RESULTS_FILE...]``: every step of ``plan``
in order, from the seed through stage0 and the chain to the stdenv bridge and the ISO, coloured
by what is known about it, with a detail per step.

It reads only files: the chain (the committed snapshot, or ``--live-bootstrap``), the bridge's
``members.json``, and the results files given, recognised by their content:

* a ``verify`` results file (JSON Lines, ``{"event": "start", ...}`` first): compared with Hydra
  (or a rebuild); its results are matched to steps by store path, else by store name;
* ``verify --against-live-bootstrap --json`` output (``{"target", "checks", "counts"}``): each
  step's output path and its pins' verdicts;
* the DDC check's result (``ddc.json``, read by ``verify/ddc.py``): the stage0 verdict.

A file of none of these shapes, a truncated one or one of the wrong schema is an error naming the
file (and line), before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.upstream.chain import Chain
from orchestrator.upstream.tree import SourceTree
from orchestrator.verify.ddc import DdcVerdict, looks_like_verdict, verdict_of
from orchestrator.verify.html import environment, write_page, write_verify_page
from orchestrator.verify.pins import PinCheck
from orchestrator.verify.pins import Report as PinsReport
from orchestrator.verify.report import Report, Status
from orchestrator.verify.results_file import load_results

# The two binaries that start everything (nix/seed.nix runs exactly these): 181 + 632 bytes.
SEEDS = [
    "seed/stage0-posix/bootstrap-seeds/POSIX/x86/hex0-seed",
    "seed/stage0-posix/bootstrap-seeds/POSIX/x86/kaem-optional-seed",
]
# How the runner names a step's output (nix/runner.nix: name = "${prefix}${attrName}", prefix
# "lb-"); the bridge's attributes already carry theirs.
STORE_NAME_PREFIXES = ("lb-", "")

# States, in the order the legend lists them; a step shows the most telling one it has.
STATES = {
    "not-built": "not built (or not known to be)",
    "built": "built: its output is in the store (--eval) or in a results file",
    "pins-equal": "live-bootstrap's pins equal",
    "pins-differ": "live-bootstrap's pins differ",
    "hydra": "compared with Hydra (or a rebuild): equal",
    "differs": "compared: differs",
    "ddc-equal": "diverse double-compiling: bit-identical",
    "ddc-differs": "diverse double-compiling: differs",
}


class SeedInfo(BaseModel):
    path: str
    size: int | None = None
    sha256: str | None = None


class StepRow(BaseModel):
    number: int
    attr: str
    directive: str
    name: str
    era: str
    state: str = "not-built"
    detail: list[tuple[str, str]] = Field(default_factory=list)
    distfiles: list[str] = Field(default_factory=list)
    pins: list[PinCheck] = Field(default_factory=list)
    pinned: int = 0
    output: str | None = None
    verify: list[tuple[str, str, str]] = Field(default_factory=list)  # (file, status, path)
    seconds: float | None = None


class Inputs(BaseModel):
    verify_reports: list[tuple[str, Report]] = Field(default_factory=list)
    pin_reports: list[tuple[str, PinsReport]] = Field(default_factory=list)
    ddc: list[tuple[str, DdcVerdict]] = Field(default_factory=list)


def _bad(path: Path, why: str, line: int | None = None) -> OrchestratorError:
    return OrchestratorError(
        f"not a results file report can read: {why}",
        file=str(path),
        line=line,
        hint="give verify's results file (JSON Lines), `verify --against-live-bootstrap "
        "--json` output, or the DDC check's result",
    )


def load_inputs(files: Sequence[Path]) -> Inputs:
    """Read every results file, recognised by its content; any bad one is an error."""
    got = Inputs()
    for given in files:
        path = _in_directory(given)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad(path, str(exc)) from None
        first = text.lstrip().split("\n", 1)[0]
        if first.startswith("{") and '"event"' in first:
            got.verify_reports.append((path.name, load_results(path)))
            continue
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"invalid JSON ({exc.msg})", exc.lineno) from None
        if isinstance(data, dict) and "checks" in data and "target" in data:
            try:
                got.pin_reports.append((path.name, PinsReport.model_validate(data)))
            except ValidationError as exc:
                raise _bad(path, f"a pins report of the wrong schema: {_first(exc)}") from None
            continue
        if not looks_like_verdict(data):
            raise _bad(path, "JSON of an unknown shape")
        got.ddc.append((path.name, verdict_of(data, path)))
    return got


def _in_directory(path: Path) -> Path:
    """A directory given as a results file (the DDC check's output): its JSON result."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.json"))
    if len(found) != 1:
        raise _bad(path, f"a directory with {len(found)} JSON files (want exactly one)")
    return found[0]


def _first(exc: ValidationError) -> str:
    e = exc.errors()[0]
    return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"


def _store_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[33:] if len(base) > 33 and base[32] == "-" else base


def seed_info(tree: SourceTree) -> list[SeedInfo]:
    out = []
    for p in SEEDS:
        if tree.has_content(p):
            data = tree.read_bytes(p)
            out.append(SeedInfo(path=p, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
        else:
            out.append(SeedInfo(path=p))
    return out


def build_rows(
    chain: Chain,
    bridge: Sequence[dict[str, Any]],
    inputs: Inputs,
    outputs: dict[str, str | None] | None = None,
) -> list[StepRow]:
    """One row per step; ``outputs``: step output paths valid in the local store (``--eval``)."""
    rows: list[StepRow] = [
        StepRow(number=0, attr="stage0", directive="seed", name="stage0-posix", era="stage0")
    ]
    for s in chain.steps:
        row = StepRow(
            number=s.step.index + 1,
            attr=s.step.attr_name,
            directive=s.step.directive,
            name=s.step.name,
            era=s.step.era,
            distfiles=list(s.distfiles),
            pinned=len(s.pins) + (1 if s.package_sha256 else 0),
        )
        row.detail.append(("manifest line", str(s.step.line)))
        if s.script:
            row.detail.append(("script", s.script))
        if s.package_file:
            row.detail.append(("package", f"{s.package_file} ({s.package_sha256 or 'no pin'})"))
        if s.override:
            row.detail.append(("override", f"{s.override.version} ({s.override.file})"))
        rows.append(row)
    start = len(rows)
    for i, b in enumerate(bridge):
        row = StepRow(
            number=start + i,
            attr=str(b["attr"]),
            directive="bridge",
            name=str(b["name"]),
            era="bridge",
        )
        row.detail.append(("nixpkgs", str(b["nixpkgs_version"])))
        row.detail.append(("script", str(b["script"])))
        if b.get("from_chain"):
            row.detail.append(("from the chain", str(b["from_chain"])))
        rows.append(row)
    rows.append(
        StepRow(number=len(rows), attr="nixos-iso", directive="iso", name="nixos-iso", era="bridge")
    )
    for row in rows:
        row.output = (outputs or {}).get(row.attr)
    _apply(rows, inputs)
    return rows


def _apply(rows: list[StepRow], inputs: Inputs) -> None:
    by_attr = {r.attr: r for r in rows}
    for _, rep in inputs.pin_reports:
        for c in rep.checks:
            row = by_attr.get(c.step)
            if row is None:
                continue
            row.pins.append(c)
            if c.output:
                row.output = c.output
    by_output = {r.output: r for r in rows if r.output}
    for fname, vr in inputs.verify_reports:
        for res in vr.results:
            row = by_output.get(res.path)
            if row is None:
                name = _store_name(res.path)
                for prefix in STORE_NAME_PREFIXES:
                    if name.startswith(prefix) and name[len(prefix) :] in by_attr:
                        row = by_attr[name[len(prefix) :]]
                        break
            if row is None:
                continue
            row.verify.append((fname, res.status.value, res.path))
            row.output = row.output or res.path
            if res.seconds is not None and res.kind == "rebuild":
                row.seconds = res.seconds
    stage0 = by_attr["stage0"]
    for fname, d in inputs.ddc:
        stage0.detail.append((f"DDC ({fname})", d.summary()))
    for row in rows:
        row.state = _state(row, inputs.ddc if row.attr == "stage0" else [])


def _state(row: StepRow, ddc: Sequence[tuple[str, DdcVerdict]]) -> str:
    if ddc:
        return "ddc-equal" if all(d.identical for _, d in ddc) else "ddc-differs"
    bad = (Status.differs.value, Status.error.value, Status.untrusted.value)
    if any(st in bad for _, st, _ in row.verify):
        return "differs"
    if any(c.status in ("mismatch", "missing") for c in row.pins):
        return "pins-differ"
    good = (Status.reproducible.value, Status.equal_modulo_store_paths.value)
    if any(st in good for _, st, _ in row.verify):
        return "hydra"
    if row.pins and any(c.status == "ok" for c in row.pins):
        return "pins-equal"
    if row.output and not (row.pins and all(c.status == "not-built" for c in row.pins)):
        return "built"
    return "not-built"


def render_chain_page(
    chain: Chain,
    rows: Sequence[StepRow],
    seeds: Sequence[SeedInfo],
    inputs: Inputs,
    verify_pages: Sequence[tuple[str, str]],
) -> str:
    counts = {s: sum(1 for r in rows if r.state == s) for s in STATES}
    return (
        environment()
        .get_template("chain.html.j2")
        .render(
            chain=chain,
            rows=rows,
            seeds=seeds,
            seed_bytes=sum(s.size or 0 for s in seeds),
            states=STATES,
            counts=counts,
            inputs=inputs,
            verify_pages=verify_pages,
            verify_links=[
                (fname, page, rep)
                for (fname, rep), (_, page) in zip(inputs.verify_reports, verify_pages, strict=True)
            ],
        )
    )


def write_chain_report(
    directory: Path,
    chain: Chain,
    bridge: Sequence[dict[str, Any]],
    tree: SourceTree,
    results: Sequence[Path],
    outputs: dict[str, str | None] | None = None,
) -> Path:
    """Read every results file first (a bad one writes nothing), then the pages."""
    inputs = load_inputs(results)
    rows = build_rows(chain, bridge, inputs, outputs)
    seeds = seed_info(tree)
    verify_pages = [
        (fname, f"verify-{i}.html") for i, (fname, _) in enumerate(inputs.verify_reports, 1)
    ]
    html = render_chain_page(chain, rows, seeds, inputs, verify_pages)
    for (_, rep), (_, page) in zip(inputs.verify_reports, verify_pages, strict=True):
        write_verify_page(rep, directory, page)
    return write_page(directory, "index.html", html)
