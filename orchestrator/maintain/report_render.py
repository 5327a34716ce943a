"""The change report for bots and pull requests: Markdown and JSON (the terminal view is
``commands/report_view.py``)."""

from __future__ import annotations

from orchestrator.maintain.report import ChangeReport, StepRef


def short_commit(commit: str | None) -> str:
    return commit[:12] if commit else "(unknown)"


def step_label(s: StepRef) -> str:
    """An uninstall's attr is positional: show what it removes."""
    return f"{s.attr} ({s.name})" if s.directive == "uninstall" else s.attr


def short_sha(h: str) -> str:
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
        f"## live-bootstrap `{short_commit(report.old.commit)}` → `{short_commit(report.new.commit)}`",
        "",
        (
            f"Profile `{report.profile}`: {report.old.steps} → {report.new.steps} steps, "
            f"{report.old.distfiles} → {report.new.distfiles} distfiles, "
            f"{report.old.package_pins} → {report.new.package_pins} package pins."
        ),
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
    lines += _md_steps(report)
    lines += _md_distfiles(report)
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
    lines += _md_pins(report)
    if report.rebuild is not None:
        lines += ["", cost_summary(report) + "."]
        lines += _md_section(
            "Steps rebuilt",
            ["step", "why"],
            [[f"`{c.attr}`", c.reason] for c in report.rebuild.rebuilt],
        )
    return "\n".join(lines) + "\n"


def _md_steps(report: ChangeReport) -> list[str]:
    lines = _md_section(
        "Version changes",
        ["package", "old", "new"],
        [[f"`{v.package}`", v.old, v.new] for v in report.versions],
        fold_over=40,
    )
    lines += _md_section(
        "Steps added",
        ["step", "index", "manifest line"],
        [[f"`{step_label(s)}`", str(s.index), str(s.line)] for s in report.steps.added],
    )
    lines += _md_section(
        "Steps removed",
        ["step", "index", "manifest line"],
        [[f"`{step_label(s)}`", str(s.index), str(s.line)] for s in report.steps.removed],
    )
    lines += _md_section(
        "Steps reordered",
        ["step", "old index", "new index"],
        [[f"`{m.attr}`", str(m.old_index), str(m.new_index)] for m in report.steps.reordered],
    )
    return lines


def _md_distfiles(report: ChangeReport) -> list[str]:
    d = report.distfiles
    lines = _md_section(
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
    return lines


def _md_pins(report: ChangeReport) -> list[str]:
    pins = report.package_pins
    lines = _md_section(
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
    return lines
