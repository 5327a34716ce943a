"""All quoting of Nix text lives here: generated Nix and Nix command lines get values only this way.

A string from upstream data must evaluate to itself in Nix, whatever it contains: ``"``, ``\\``,
``${``, ``''``, newlines. We always emit double-quoted strings and escape every ``$`` (``\\$`` is
a valid escape for ``$``), so no interpolation can ever start. NUL cannot be represented in a Nix
string and is refused; so are lone surrogates, which cannot be written as UTF-8.

Every function that produces Nix syntax returns :class:`NixText`. The template environment
(``render.py``) refuses to output anything else, so a template that interpolates a raw value --
``{{ name }}`` instead of ``{{ name | nix_str }}`` -- fails to render instead of writing code.

Command lines: an installable's attribute path has its own syntax (Nix splits it at dots, a
``"..."`` group keeps dots, there is no escape), and a flake reference's fragment is
percent-decoded before that, so both are built here too (:func:`attr_path`,
:func:`flake_installable`). Values that an expression on the command line needs are passed as
JSON through :func:`nix_json`, never pasted in.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Sequence

from orchestrator.errors import GenerateError


class NixText(str):
    """Nix syntax made by this module from a value; the only thing a template may output."""

    __slots__ = ()


_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE = re.compile(r'[\\"$\n\r\t]')
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Identifiers that need no quotes as attribute names (Nix's ID token), unless a keyword.
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_KEYWORDS = {"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"}
# One segment of a relative path literal: Nix's path characters, no leading dot (so never
# ``.``, ``..`` or a hidden file), hence no way to leave the directory or start anything else.
_PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1  # Nix integers are 64-bit
# Comments: Nix ends a ``#`` comment at LF or CR; other control characters are made visible.
_COMMENT_BREAK_RE = re.compile(r"[\r\n]")
_COMMENT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _checked_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise GenerateError(f"{what}: expected a string, got {type(value).__name__} {value!r}")
    if "\0" in value:
        raise GenerateError(f"cannot represent a NUL byte in a Nix string: {value!r}")
    if _SURROGATE_RE.search(value):
        raise GenerateError(f"not valid Unicode (a lone surrogate): {value!r}")
    return value


def nix_string(value: object) -> NixText:
    """A double-quoted Nix string literal that evaluates to exactly ``value``."""
    text = _checked_text(value, "nix_str")
    return NixText('"' + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text) + '"')


def nix_attr(name: object) -> NixText:
    """An attribute name (in a binding or after a dot): bare when it is a plain identifier,
    a quoted string otherwise."""
    text = _checked_text(name, "nix_attr")
    if _IDENT_RE.fullmatch(text) and text not in _KEYWORDS:
        return NixText(text)
    return nix_string(text)


def nix_int(value: object) -> NixText:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenerateError(f"expected an integer, got {type(value).__name__} {value!r}")
    if not _INT_MIN <= value <= _INT_MAX:
        raise GenerateError(f"{value} does not fit a Nix integer (64 bits)")
    # `-5` is not a list element or an argument by itself: unary minus needs parentheses.
    # The smallest integer has no literal (its magnitude overflows): write it as a sum.
    if value == _INT_MIN:
        return NixText(f"({_INT_MIN + 1} - 1)")
    return NixText(str(value) if value >= 0 else f"({value})")


def nix_value(value: object) -> NixText:
    """Scalars and flat lists of scalars, for the few places that need them."""
    if value is None:
        return NixText("null")
    if value is True:
        return NixText("true")
    if value is False:
        return NixText("false")
    if isinstance(value, int):
        return nix_int(value)
    if isinstance(value, str):
        return nix_string(value)
    if isinstance(value, list | tuple):
        if not value:
            return NixText("[ ]")
        return NixText("[ " + " ".join(nix_value(v) for v in value) + " ]")
    raise GenerateError(f"no Nix rendering for {type(value).__name__}")


def nix_comment(value: object) -> NixText:
    """Text for inside a ``#`` comment: it cannot end the comment (CR and LF become spaces) and
    other control characters are shown as ``\\xNN``."""
    if not isinstance(value, str):
        raise GenerateError(f"nix_comment: expected a string, got {type(value).__name__}")
    if _SURROGATE_RE.search(value):
        raise GenerateError(f"not valid Unicode (a lone surrogate): {value!r}")
    text = _COMMENT_BREAK_RE.sub(" ", value)
    return NixText(_COMMENT_CONTROL_RE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text))


def path_segment(name: object) -> str:
    """``name`` as one file-name segment of a relative path, checked against the grammar both
    Nix path literals and our directory layout accept; refused otherwise."""
    if not isinstance(name, str) or not _PATH_SEGMENT_RE.fullmatch(name):
        raise GenerateError(
            f"{name!r} cannot be a file name in generated Nix",
            hint="letters, digits and + - _ . only, not starting with a dot",
        )
    return name


def nix_path_segment(name: object) -> NixText:
    """A segment for a relative path literal in a template: ``./{{ n | nix_path_segment }}.nix``."""
    return NixText(path_segment(name))


def nix_json(value: object) -> NixText:
    """A parenthesised Nix expression evaluating to ``value`` (JSON data), for expressions on a
    command line: ``builtins.fetchTree {nix_json(spec)}``."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GenerateError(f"cannot pass {value!r} to Nix as JSON: {exc}") from None
    return NixText(f"(builtins.fromJSON {nix_string(text)})")


def nix_program(code: str, data: object) -> NixText:
    """A Nix program we ship (the text of a ``.nix`` file in ``orchestrator/nixexpr/``, a
    function of one argument) applied to ``data`` passed as JSON. Its text is spliced in rather
    than imported by path, because pure evaluation (``nix eval FLAKE --apply``) may not read a
    file outside the flake. Only our own code becomes code; data crosses only as JSON (nix-update
    keeps its Nix the same way)."""
    return NixText(f"((\n{code}\n) {nix_json(data)})")


# -- command lines -----------------------------------------------------------------------------
# Nix's attribute-path syntax (``--file F ATTRPATH``, the fragment of a flake installable)
# splits at dots; a ``"..."`` group keeps its dots; there is no escape character, so a name with
# a ``"`` cannot be selected at all; and ``--file``'s path reads an all-digit name, quoted or
# not, as a list index (measured with Nix 2.8). A plain name stays bare for readability.
_PLAIN_SEGMENT_RE = re.compile(r"[A-Za-z0-9_'+-]+")
_INDEX_RE = re.compile(r"\+?[0-9]+")
# What Nix 2.8 leaves alone in a flake reference's fragment (measured: everything else is
# either refused as "not a valid URL" or must be percent-encoded, and `%` is decoded).
_FRAGMENT_SAFE = "\"'+-._~"


def attr_path(attrs: Sequence[str]) -> str:
    """The attribute path ``attrs`` in Nix's selection-path syntax (``--file F PATH``)."""
    if isinstance(attrs, str):
        raise TypeError("attr_path takes a sequence of attribute names")
    if not attrs:
        raise GenerateError("an attribute path needs at least one attribute")
    out = []
    for a in attrs:
        text = _checked_text(a, "attribute")
        if text == "":
            raise GenerateError("an empty attribute name cannot be selected from the command line")
        if '"' in text:
            raise GenerateError(
                f"the attribute {text!r} cannot be selected from the command line",
                hint="Nix's attribute-path syntax has no escape for a double quote (\")",
            )
        if _INDEX_RE.fullmatch(text):
            raise GenerateError(
                f"the attribute {text!r} cannot be selected from the command line",
                hint="Nix reads an all-digit name in an attribute path as a list index",
            )
        out.append(text if _PLAIN_SEGMENT_RE.fullmatch(text) else f'"{text}"')
    return ".".join(out)


def flake_installable(flake: str, attrs: Sequence[str]) -> str:
    """``FLAKE#ATTRPATH`` with the attribute path percent-encoded as Nix decodes the fragment."""
    return flake + "#" + urllib.parse.quote(attr_path(attrs), safe=_FRAGMENT_SAFE)


# What Nix 2.8 takes in a ``path:`` flake reference (measured): it does not percent-decode, a
# space makes the reference "not a valid URL", ``?`` starts a query and ``#`` an attribute path.
_PATH_REF_RE = re.compile(r"/[A-Za-z0-9/._+~=,@-]*")


def path_flake_ref(path: str) -> str:
    """``path:PATH`` for ``--override-input``; PATH absolute and expressible, else an error."""
    text = _checked_text(path, "path")
    if not _PATH_REF_RE.fullmatch(text):
        raise GenerateError(
            f"{text}: Nix cannot take this directory as a flake input (path:{text})",
            hint="a path: reference holds letters, digits and / . _ + ~ = , @ - only: "
            "move or copy the tree to such a path",
        )
    return "path:" + text


FILTERS = {
    "nix_str": nix_string,
    "nix_attr": nix_attr,
    "nix": nix_value,
    "nix_comment": nix_comment,
    "nix_path_segment": nix_path_segment,
}
