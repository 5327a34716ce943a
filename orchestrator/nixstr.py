"""All quoting of Nix text lives here: the templates may only emit values through these filters.

A string from upstream data must evaluate to itself in Nix, whatever it contains: ``"``, ``\\``,
``${``, ``''``, newlines. We always emit double-quoted strings and escape every ``$`` (``\\$`` is
a valid escape for ``$``), so no interpolation can ever start. NUL cannot be represented in a Nix
string and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from orchestrator.errors import GenerateError

_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE = re.compile(r'[\\"$\n\r\t]')
# Identifiers that need no quotes as attribute names (and are not keywords).
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
_KEYWORDS = {"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"}


def nix_string(value: str) -> str:
    if "\0" in value:
        raise GenerateError(f"cannot represent a NUL byte in a Nix string: {value!r}")
    return '"' + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], value) + '"'


def nix_attr(name: str) -> str:
    """An attribute name: bare when it is a plain identifier, quoted otherwise."""
    if _IDENT_RE.match(name) and name not in _KEYWORDS:
        return name
    return nix_string(name)


def nix_value(value: object) -> str:
    """Scalars and flat lists of scalars, for the few places that need them."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return nix_string(value)
    if isinstance(value, Iterable):
        return "[ " + " ".join(nix_value(v) for v in value) + " ]" if value else "[ ]"
    raise GenerateError(f"no Nix rendering for {type(value).__name__}")


def nix_comment(value: str) -> str:
    """Text for inside a ``#`` comment: Nix ends comments at CR as well as LF."""
    return re.sub(r"[\r\n]", " ", value)


FILTERS = {
    "nix_str": nix_string,
    "nix_attr": nix_attr,
    "nix": nix_value,
    "nix_comment": nix_comment,
}
