"""Upstream text on a terminal, shown literally.

Step names, file names, URLs, paths and log lines come from live-bootstrap's tree, from Nix or
from a build; printed raw they could restyle the terminal (``\\x1b[2J``), hide text (``\\r``),
reorder it (U+202E) or -- through rich -- be read as markup (``[bold]``) or emoji codes. Every
place that prints such text goes through this module:

- ``visible(s)``: the string with every non-printable character (C0/C1 controls, DEL, format
  and separator characters such as bidi overrides, U+2028) written as a Python-style escape
  (``\\x1b``, ``\\n``, ``\\u202e``); printable text, including non-ASCII letters, is unchanged.
- ``text(*parts)``: a ``rich.text.Text`` (never parsed as markup, never emoji-substituted) of
  visible parts; a part is a string or ``(string, style)`` for our own styling.

Use ``text`` for table cells and ``console.print``; ``visible`` for plain ``print`` and logs.
"""

from __future__ import annotations

from rich.text import Text

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def visible(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with every non-printable character made visible as an escape.

    ``keep_newlines``: for our own multi-line messages (an error and its hint), keep ``\\n``
    as a line break and escape everything else.
    """
    s = value if isinstance(value, str) else str(value)
    if s.isprintable():  # the common case, checked in C
        return s
    if keep_newlines:
        return "\n".join(visible(line) for line in s.split("\n"))
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in s)


def text(*parts: object | tuple[object, str]) -> Text:
    """A rich Text of literal parts: no markup, no emoji codes, controls made visible."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            value, style = part
            out.append(visible(value), style=style)
        else:
            out.append(visible(part))
    return out


def lines(value: object, style: str = "") -> Text:
    """Multi-line literal text (a cell with one URL per line, a message and its hint)."""
    return Text(visible(value, keep_newlines=True), style=style)
