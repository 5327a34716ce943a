"""Static report pages: ``verify --html DIR`` (one run, per cache) and the chain page of
``orchestrator report --html DIR`` (``chain_page``). jinja2 templates over the same models
``--json`` prints; every value is HTML-escaped (autoescape), nothing is loaded from the network,
so a page opens from ``file://`` on its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from orchestrator.errors import OrchestratorError
from orchestrator.verify.report import PathResult, Report, Status, Summary

TEMPLATES = Path(__file__).parent / "templates"
STATUSES = [s.value for s in Status]


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class SummaryRow(BaseModel):
    name: str
    summary: Summary
    counts: dict[str, int]


def _row(name: str, summary: Summary) -> SummaryRow:
    counts = {s: int(getattr(summary, s.replace("-", "_"))) for s in STATUSES}
    return SummaryRow(name=name, summary=summary, counts=counts)


def diffoscope_page(page: str, index: int) -> str:
    """Where the diffoscope HTML of the ``index``-th result of ``page`` goes, beside it."""
    return f"{page.rsplit('.', 1)[0]}-diffoscope-{index}.html"


def render_verify_page(report: Report, name: str = "index.html") -> str:
    first = "all caches" if report.caches else str(report.cache or report.mode)
    summary_rows = [_row(first, report.summary)]
    summary_rows += [_row(c.url, c.summary) for c in report.caches or []]
    diffs: list[tuple[int, PathResult]] = [
        (i, r) for i, r in enumerate(report.results, 1) if r.diff is not None
    ]
    return (
        environment()
        .get_template("verify.html.j2")
        .render(
            report=report,
            statuses=STATUSES,
            summary_rows=summary_rows,
            caches=[c.url for c in report.caches or []],
            diffs=diffs,
            diffoscope_pages={
                i: diffoscope_page(name, i) for i, r in diffs if r.diff and r.diff.html
            },
        )
    )


def write_page(directory: Path, name: str, html: str) -> Path:
    """Write ``directory/name`` whole or not at all (a temporary file renamed into place)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(html)
            os.chmod(tmp, 0o644)  # a page to publish: mkstemp's 0600 would hide it from a server
            os.replace(tmp, directory / name)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise OrchestratorError(
            f"cannot write the report page: {exc}", file=str(directory)
        ) from None
    return directory / name


def write_verify_page(report: Report, directory: Path, name: str = "index.html") -> Path:
    """The page, and beside it diffoscope's own HTML report of each differing path that has
    one (a page diffoscope made: no script, nothing loaded)."""
    html = render_verify_page(report, name)
    for i, r in enumerate(report.results, 1):
        if r.diff is not None and r.diff.html:
            write_page(directory, diffoscope_page(name, i), r.diff.html)
    return write_page(directory, name, html)
