"""``orchestrator verify``'s table: one row per path (all up to 50 paths, else those that are not
``reproducible``), then the summary line. Every upstream or store string is printed literally
(rich markup escaped)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from orchestrator.tables import Rows, columns, emit
from orchestrator.verify.report import PathResult, Report, Status

SHOW_ALL_UP_TO = 50

STYLE = {
    Status.reproducible: "green",
    Status.equal_modulo_store_paths: "green",
    Status.differs: "bold red",
    Status.not_in_cache: "yellow",
    Status.not_built_locally: "yellow",
    Status.untrusted: "bold magenta",
    Status.error: "bold red",
}


def print_table(report: Report, *, verbose: bool = False) -> None:
    console = Console(highlight=False)
    rows = report.results
    hidden = 0
    if not verbose and len(rows) > SHOW_ALL_UP_TO:
        shown = [r for r in rows if r.status != Status.reproducible]
        hidden = len(rows) - len(shown)
        rows = shown
    if rows:
        # orchestrator.tables: whole store paths on a terminal and in a pipe
        table = Rows("", columns("status", "path", "detail", multiline=("detail",)))
        cell_styles = {}
        for r in rows:
            detail = r.reason or ""
            if r.theirs:
                detail = f"vs {r.theirs}\n{detail}"
            if r.hint and r.status not in (Status.reproducible, Status.equal_modulo_store_paths):
                detail += f"\nhint: {r.hint}"
            for v in r.per_cache or []:  # several caches: each one's verdict
                detail += f"\n{v.cache}: {v.status.value}"
            if r.consensus:
                detail += f"\nconsensus: {r.consensus}"
            if r.diff is not None:
                detail += "\n" + _diff_text(r)
            cell_styles[(len(table.rows), 0)] = STYLE[r.status]
            table.add(r.status.value, r.path, detail)
        emit(table, console=console, cell_styles=cell_styles)
    if hidden:
        console.print(f"({hidden} reproducible paths not listed; --verbose lists them)")
    if report.cache_gave_up:
        console.print(
            f"gave up on {escape(str(report.cache))}: {escape(report.cache_gave_up)}",
            soft_wrap=True,
        )
    console.print(report.summary.line())


def _diff_text(r: PathResult) -> str:
    d = r.diff
    assert d is not None
    if d.error:
        return f"diff failed: {d.error}"
    lines = []
    for f in d.files[:20]:
        text = f"{f.change}: {f.path or '.'}"
        if f.change == "content":
            text += f" ({f.ours_size} vs {f.theirs_size} bytes, first difference at {f.first_difference})"
        elif f.detail:
            text += f" ({f.detail})"
        lines.append(text)
    if len(d.files) > 20 or d.truncated:
        lines.append("...")
    if d.tool == "diffoscope" and d.output:
        lines.append("diffoscope report in --json output")
    return "\n".join(lines) or "no file-level difference found"
