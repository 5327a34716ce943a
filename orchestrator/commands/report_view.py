"""The change report on a terminal (``diff``, ``update``): a summary and one table per kind of
change, upstream names and URLs shown literally."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from orchestrator.display import lines
from orchestrator.maintain.report import ChangeReport
from orchestrator.maintain.report_render import (
    cost_summary,
    short_commit,
    short_sha,
    step_label,
)


def print_rich(report: ChangeReport, console: Console) -> None:
    console.print(
        lines(
            f"live-bootstrap {short_commit(report.old.commit)} → {short_commit(report.new.commit)} "
            f"(profile {report.profile}): {report.old.steps} → {report.new.steps} steps, "
            f"{report.old.distfiles} → {report.new.distfiles} distfiles"
        )
    )
    if report.empty:
        console.print("no changes", markup=False)
        return
    summary = Table(title="summary", show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    if report.sources_syntax.changed:
        summary.add_row(
            "sources syntax", lines(f"{report.sources_syntax.old} → {report.sources_syntax.new}")
        )
    for what, n in report.counts().items():
        if n:
            summary.add_row(what, str(n))
    console.print(summary)
    _print_tables(report, console)


def _print_tables(report: ChangeReport, console: Console) -> None:
    """One table per kind of change that has any."""

    def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
        if not rows:
            return
        t = Table(title=f"{title} ({len(rows)})")
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*(lines(cell) for cell in r))  # upstream names and URLs, literally
        console.print(t)

    table(
        "version changes",
        ["package", "old", "new"],
        [[v.package, v.old, v.new] for v in report.versions],
    )
    step_rows = [
        ["added", step_label(s), str(s.index), f"line {s.line}"] for s in report.steps.added
    ]
    step_rows += [
        ["removed", step_label(s), str(s.index), f"line {s.line}"] for s in report.steps.removed
    ]
    step_rows += [
        [
            "moved",
            m.attr if m.attr == m.old_attr else f"{m.old_attr} → {m.attr}",
            f"{m.old_index} → {m.new_index}",
            "",
        ]
        for m in report.steps.reordered
    ]
    table("steps", ["change", "step", "index", "manifest"], step_rows)
    d = report.distfiles
    df_rows = [["added", x.filename, short_sha(x.sha256), ", ".join(x.steps)] for x in d.added]
    df_rows += [["removed", x.filename, short_sha(x.sha256), ", ".join(x.steps)] for x in d.removed]
    df_rows += [
        [
            "re-hashed",
            x.filename,
            f"{short_sha(x.old_sha256)} → {short_sha(x.new_sha256)}",
            ", ".join(x.steps),
        ]
        for x in d.rehashed
    ]
    df_rows += [["urls", x.filename, "", "\n".join(x.new_urls)] for x in d.urls_changed]
    table("distfiles", ["change", "file", "sha256", "steps / urls"], df_rows)
    table(
        "predicate outcomes",
        ["profile", "entry", "old", "new"],
        [
            [
                p.profile,
                f"{p.directive}: {p.name}",
                f"{p.old_result} (line {p.old_line})",
                f"{p.new_result} (line {p.new_line})",
            ]
            for p in report.predicates
        ],
    )
    pins = report.package_pins
    pin_rows = [["added", p.file, short_sha(p.sha256)] for p in pins.added]
    pin_rows += [["removed", p.file, short_sha(p.sha256)] for p in pins.removed]
    pin_rows += [
        ["changed", p.file, f"{short_sha(p.old_sha256)} → {short_sha(p.new_sha256)}"]
        for p in pins.changed
    ]
    table("package pins (SHA256SUMS.pkgs)", ["change", "package", "sha256"], pin_rows)
    cost = report.rebuild
    if cost is not None:
        console.print(lines(cost_summary(report)))
        table("rebuilt (early cutoff)", ["step", "why"], [[c.attr, c.reason] for c in cost.rebuilt])
