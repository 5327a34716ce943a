"""How ``orchestrator build`` shows a build on stderr: a live display on a terminal, one line per
started/finished derivation elsewhere (both :class:`~orchestrator.build.watch.BuildView`), and the
summary table. The state they draw is ``build/progress.py``'s; the loop is ``build/watch.py``."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator import display
from orchestrator.build.nixlog import BuildLog, BuildRecord, StartEvent, StopEvent
from orchestrator.build.progress import LiveView, StepIndex, fmt_seconds
from orchestrator.build.watch import Event
from orchestrator.display import text, visible


class LiveDisplay:
    """The live view, redrawn by ``rich.live.Live`` on every tick of the loop."""

    def __init__(self, view: LiveView, console: Console) -> None:
        self.view = view
        self.live = Live(self, console=console, auto_refresh=False, transient=True)

    def __rich__(self) -> RenderableType:
        view = self.view
        now = view.clock()
        parts: list[RenderableType] = [Text(visible(view.header(now)), style="bold")]
        for rec in view.log.running():
            parts.append(Text(visible(view.running_line(rec, now)), style="cyan"))
            for line in list(rec.tail)[-view.log_lines :]:
                parts.append(
                    Text("  │ " + visible(line), style="dim", overflow="ellipsis", no_wrap=True)
                )
        return Group(*parts)

    def event(self, ev: Event, log: BuildLog, now: float) -> None:
        pass  # drawn on the next tick

    def log_lines(self, rec: BuildRecord, lines: list[str]) -> None:
        pass  # the running build's tail is drawn on the next tick

    def tick(self, now: float) -> None:
        self.live.refresh()


class PlainReporter:
    """One line per started/finished derivation, for logs (stderr not a terminal)."""

    def __init__(self, view: LiveView, console: Console, *, echo: bool) -> None:
        self.view = view
        self.echo = echo
        self.console = console

    def event(self, ev: Event, log: BuildLog, now: float) -> None:
        if isinstance(ev, StartEvent):
            rec = log.record_of(ev.id)
            if rec is not None:
                last = self.view.durations.get(rec.name)
                more = f" (last run {fmt_seconds(last)})" if last is not None else ""
                self.console.print(
                    display.text(f"[{self._count()}] ", self.view.describe(rec), more),
                    soft_wrap=True,
                )
        elif isinstance(ev, StopEvent):
            rec = log.record_of(ev.id)
            if rec is not None:
                self.console.print(
                    display.text(
                        f"[{self._count()}] ",
                        rec.name,
                        f": {rec.status} after {fmt_seconds(rec.seconds(now))}",
                    ),
                    soft_wrap=True,
                )

    def log_lines(self, rec: BuildRecord, lines: list[str]) -> None:
        if self.echo:
            for line in lines:
                self.console.print(display.text(rec.name, "> ", line.rstrip("\n")), soft_wrap=True)

    def tick(self, now: float) -> None:
        pass

    def _count(self) -> str:
        log = self.view.log
        total = max(log.progress.expected, len(self.view.to_build))
        return f"{len(log.builds)}/{total}"


def summary_table(
    log: BuildLog, steps: StepIndex, durations_before: dict[str, float], now: float
) -> Table:
    table = Table(title="build summary", title_justify="left")
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("derivation", overflow="fold")
    table.add_column("pass", justify="right")
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("last run", justify="right", no_wrap=True)
    for rec in log.builds.values():
        step = steps.for_name(rec.name)
        style = {"built": "green", "failed": "bold red", "running": "yellow"}[rec.status]
        table.add_row(
            f"{step.index + 1}/{step.total}" if step else "",
            text(rec.name),
            str(step.pass_no) if step and step.pass_no else "",
            f"[{style}]{rec.status}[/]",
            fmt_seconds(rec.seconds(now)),
            fmt_seconds(durations_before[rec.name]) if rec.name in durations_before else "",
        )
    return table
