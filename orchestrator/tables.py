"""Tables on stdout that never cut a cell, on a terminal or in a pipe.

* stdout not a terminal (a pipe, a file, CI logs): a header line, then one line per row, cells
  separated by tabs. Every cell is whole -- ``plan | grep gcc``, ``cut -f2`` and
  ``awk -F'\\t'`` see full names, store paths and URLs. Tabs, newlines and other control
  characters inside a cell are written as ``\\t``, ``\\n``, ``\\xNN`` so that a row stays one line.
  (``--json`` is the format for programs; this one is for people with grep.)
* a terminal: a rich table as wide as its widest row needs. No column is folded or ellipsised,
  so a store path or URL is never split by us; a row wider than the terminal wraps on the
  screen, and a copied line is still the whole value. Cells are rich ``Text``, never markup, so
  upstream text such as ``[bold]`` is shown as written.

Escapes are orchestrator.display's (``visible``): the same rule as every other place that shows
upstream text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from orchestrator.display import visible


def _visible(text: str) -> str:
    """One line: every non-printable character written as an escape (display.py's rule)."""
    return visible(text)


@dataclass
class Column:
    header: str
    right: bool = False  # right-justified on a terminal (numbers)
    multiline: bool = False  # "\n" in a cell: a line break on a terminal, " ; " in a pipe


def _cell(text: str, column: Column, sep: str) -> str:
    if column.multiline:
        return sep.join(_visible(line) for line in text.split("\n"))
    return _visible(text)


@dataclass
class Rows:
    """A table: a title (stderr when piped, so stdout is only the rows), columns, rows."""

    title: str
    columns: list[Column]
    rows: list[list[str]] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)  # per row, terminal only

    def add(self, *cells: object, style: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(["" if c is None else str(c) for c in cells])
        self.styles.append(style)


def columns(
    *headers: str, right: Sequence[str] = (), multiline: Sequence[str] = ()
) -> list[Column]:
    return [Column(h, right=h in right, multiline=h in multiline) for h in headers]


def write_plain(table: Rows, out: IO[str]) -> None:
    out.write("\t".join(_visible(c.header) for c in table.columns) + "\n")
    for row in table.rows:
        cells = (_cell(cell, c, " ; ") for cell, c in zip(row, table.columns, strict=True))
        out.write("\t".join(cells) + "\n")


def rich_table(table: Rows, cell_styles: dict[tuple[int, int], str] | None = None) -> Table:
    t = Table(title=table.title, title_justify="left")
    for c in table.columns:
        t.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for i, (row, style) in enumerate(zip(table.rows, table.styles, strict=True)):
        cells = [
            Text(_cell(cell, table.columns[j], "\n"), style=(cell_styles or {}).get((i, j), ""))
            for j, cell in enumerate(row)
        ]
        t.add_row(*cells, style=style or "")
    return t


def emit(
    table: Rows,
    *,
    console: Console | None = None,
    cell_styles: dict[tuple[int, int], str] | None = None,
) -> None:
    """Print ``table`` on stdout: plain rows unless stdout is a terminal."""
    console = console or Console(highlight=False)
    if not console.is_terminal:
        if table.title:
            Console(stderr=True, highlight=False).print(Text(table.title), soft_wrap=True)
        write_plain(table, console.file if console.file is not None else sys.stdout)
        return
    rendered = rich_table(table, cell_styles)
    need = Measurement.get(console, console.options.update_width(1 << 20), rendered).maximum
    if need > console.width:  # as wide as the content: never fold or cut a cell
        console = Console(highlight=False, width=need, force_terminal=True, file=console.file)
    console.print(rendered)
