"""The change report for people and bots: a rich view, Markdown (for pull requests) and JSON."""

from __future__ import annotations

from orchestrator.maintain.report import ChangeReport, StepRef


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(unknown)"


def _label(s: StepRef) -> str:
    """An uninstall's attr is positional: show what it removes."""
    return f"{s.attr} ({s.name})" if s.directive == "uninstall" else s.attr


def _sha(h: str) -> str:
    return h[:12] + "…"


def cost_summary(report: ChangeReport) -> str:
    cost = report.rebuild
    if cost is None:
        return ""
    pinned = sum(1 for c in cost.kept if c.reason.startswith("pin of"))
    return (
        f"cost of the bump (early cutoff): {len(cost.rebuilt)} steps rebuilt, {len(cost.kept)} "
        f"kept ({pinned} pinned packages unchanged)"
    )


def to_json(report: ChangeReport) -> str:
    return report.model_dump_json(indent=1) + "\n"


def print_rich(report: ChangeReport, console) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from orchestrator.display import lines

    console.print(
        lines(
            f"live-bootstrap {_short(report.old.commit)} → {_short(report.new.commit)} "
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
    step_rows = [["added", _label(s), str(s.index), f"line {s.line}"] for s in report.steps.added]
    step_rows += [
        ["removed", _label(s), str(s.index), f"line {s.line}"] for s in report.steps.removed
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
    df_rows = [["added", x.filename, _sha(x.sha256), ", ".join(x.steps)] for x in d.added]
    df_rows += [["removed", x.filename, _sha(x.sha256), ", ".join(x.steps)] for x in d.removed]
    df_rows += [
        [
            "re-hashed",
            x.filename,
            f"{_sha(x.old_sha256)} → {_sha(x.new_sha256)}",
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
    pin_rows = [["added", p.file, _sha(p.sha256)] for p in pins.added]
    pin_rows += [["removed", p.file, _sha(p.sha256)] for p in pins.removed]
    pin_rows += [
        ["changed", p.file, f"{_sha(p.old_sha256)} → {_sha(p.new_sha256)}"] for p in pins.changed
    ]
    table("package pins (SHA256SUMS.pkgs)", ["change", "package", "sha256"], pin_rows)
    cost = report.rebuild
    if cost is not None:
        console.print(lines(cost_summary(report)))
        table("rebuilt (early cutoff)", ["step", "why"], [[c.attr, c.reason] for c in cost.rebuilt])


def _md_escape(text: str) -> str:
    from orchestrator.display import visible

    return visible(text.replace("|", "\\|").replace("\n", " "))


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return out


def _md_section(
    title: str, columns: list[str], rows: list[list[str]], fold_over: int = 15
) -> list[str]:
    if not rows:
        return []
    body = _md_table(columns, rows)
    if len(rows) > fold_over:
        return [
            "",
            f"<details><summary>{title} ({len(rows)})</summary>",
            "",
            *body,
            "",
            "</details>",
        ]
    return ["", f"### {title} ({len(rows)})", "", *body]


def to_markdown(report: ChangeReport) -> str:
    lines = [
        f"## live-bootstrap `{_short(report.old.commit)}` → `{_short(report.new.commit)}`",
        "",
        f"Profile `{report.profile}`: {report.old.steps} → {report.new.steps} steps, "
        f"{report.old.distfiles} → {report.new.distfiles} distfiles, "
        f"{report.old.package_pins} → {report.new.package_pins} package pins.",
    ]
    if report.empty:
        lines += ["", "No changes."]
        return "\n".join(lines) + "\n"
    lines.append("")
    if report.sources_syntax.changed:
        lines.append(
            f"- **`sources` syntax**: {report.sources_syntax.old} → {report.sources_syntax.new}"
        )
    for what, n in report.counts().items():
        if n:
            lines.append(f"- {what}: {n}")
    lines += _md_section(
        "Version changes",
        ["package", "old", "new"],
        [[f"`{v.package}`", v.old, v.new] for v in report.versions],
        fold_over=40,
    )
    lines += _md_section(
        "Steps added",
        ["step", "index", "manifest line"],
        [[f"`{_label(s)}`", str(s.index), str(s.line)] for s in report.steps.added],
    )
    lines += _md_section(
        "Steps removed",
        ["step", "index", "manifest line"],
        [[f"`{_label(s)}`", str(s.index), str(s.line)] for s in report.steps.removed],
    )
    lines += _md_section(
        "Steps reordered",
        ["step", "old index", "new index"],
        [[f"`{m.attr}`", str(m.old_index), str(m.new_index)] for m in report.steps.reordered],
    )
    d = report.distfiles
    lines += _md_section(
        "Distfiles added",
        ["file", "sha256", "steps"],
        [[f"`{x.filename}`", f"`{x.sha256}`", ", ".join(x.steps)] for x in d.added],
    )
    lines += _md_section(
        "Distfiles removed",
        ["file", "sha256", "steps"],
        [[f"`{x.filename}`", f"`{x.sha256}`", ", ".join(x.steps)] for x in d.removed],
    )
    lines += _md_section(
        "Distfiles re-hashed",
        ["file", "old sha256", "new sha256"],
        [[f"`{x.filename}`", f"`{x.old_sha256}`", f"`{x.new_sha256}`"] for x in d.rehashed],
        fold_over=0,
    )
    lines += _md_section(
        "Distfiles with other URLs",
        ["file", "old", "new"],
        [[f"`{x.filename}`", " ".join(x.old_urls), " ".join(x.new_urls)] for x in d.urls_changed],
    )
    lines += _md_section(
        "Predicate outcomes changed",
        ["profile", "entry", "old", "new"],
        [
            [
                p.profile,
                f"`{p.directive}: {p.name}`",
                f"{p.old_result} (line {p.old_line})",
                f"{p.new_result} (line {p.new_line})",
            ]
            for p in report.predicates
        ],
    )
    pins = report.package_pins
    lines += _md_section(
        "Package pins added",
        ["package", "sha256"],
        [[f"`{p.file}`", f"`{p.sha256}`"] for p in pins.added],
    )
    lines += _md_section(
        "Package pins removed",
        ["package", "sha256"],
        [[f"`{p.file}`", f"`{p.sha256}`"] for p in pins.removed],
    )
    lines += _md_section(
        "Package pins changed",
        ["package", "old sha256", "new sha256"],
        [[f"`{p.file}`", f"`{p.old_sha256}`", f"`{p.new_sha256}`"] for p in pins.changed],
        fold_over=0,
    )
    if report.rebuild is not None:
        lines += ["", cost_summary(report) + "."]
        lines += _md_section(
            "Steps rebuilt",
            ["step", "why"],
            [[f"`{c.attr}`", c.reason] for c in report.rebuild.rebuilt],
        )
    return "\n".join(lines) + "\n"
