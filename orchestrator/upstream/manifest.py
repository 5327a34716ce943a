"""``steps/manifest`` parsed with the exact semantics of live-bootstrap's seed/script-generator.c.

Tokenizing: a line is split on *single* spaces (two spaces make an empty token, as in C), and a
``#`` ends the line at any position. Directives: ``build``, ``improve``, ``define``, ``jump``,
``uninstall``. Predicates are parsed up front (script-generator evaluates every one of them, so a
malformed predicate anywhere is fatal upstream too) and evaluated later by ``plan``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import GenerateError, ParseError
from orchestrator.nixstr import nix_string
from orchestrator.upstream.names import check_name, check_path, check_variable
from orchestrator.upstream.predicates import Expr, parse_logic, parse_predicate

DirectiveKind = Literal["build", "improve", "define", "jump", "uninstall"]
_KEYWORDS: dict[str, DirectiveKind] = {
    "build:": "build",
    "improve:": "improve",
    "define:": "define",
    "jump:": "jump",
    "uninstall:": "uninstall",
}


class Entry(BaseModel):
    """One non-blank, non-comment line of the manifest."""

    model_config = ConfigDict(frozen=True)

    line: int
    kind: DirectiveKind
    arg: str  # build/improve/jump: the name; uninstall: all arguments joined by one space
    predicate: Expr | None = None
    predicate_text: str | None = None
    # define only: the variable and its value, a constant or an expression
    define_name: str | None = None
    define_constant: str | None = None
    define_expr: Expr | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    entries: list[Entry]


def tokenize_line(text: str) -> list[str]:
    """Tokens of one line as consume_line() in script-generator.c produces them."""
    text = text.split("#", 1)[0]
    if text == "":
        return []
    tokens = text.split(" ")
    # A single trailing space does not open a new token in the C tokenizer (it reads the
    # space, then sees end of line); each further space does produce an empty token.
    if tokens[-1] == "" and len(tokens) > 1:
        tokens.pop()
    return tokens


def parse_manifest(text: str, path: str | Path = "steps/manifest") -> Manifest:
    entries: list[Entry] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        # A line starting with '#' or empty is skipped entirely; otherwise tokens are read.
        if raw == "" or raw.startswith("#"):
            continue
        tokens = tokenize_line(raw)
        if not tokens:
            continue
        entries.append(_parse_entry(tokens, str(path), lineno))
    return Manifest(path=str(path), entries=entries)


def _parse_entry(tokens: list[str], path: str, lineno: int) -> Entry:
    def fail(msg: str, hint: str | None = None) -> ParseError:
        return ParseError(msg, file=path, line=lineno, hint=hint)

    keyword, rest = tokens[0], tokens[1:]
    kind = _KEYWORDS.get(keyword)
    if kind is None:
        raise fail(
            f"unknown directive {keyword!r}",
            hint="expected one of: " + ", ".join(_KEYWORDS),
        )
    if not rest or rest[0] == "":
        raise fail(f"{keyword} needs an argument")

    if kind == "define":
        return _parse_define(rest, path, lineno)

    if kind == "uninstall":
        end = rest.index("(") if "(" in rest else len(rest)
        args, rest = rest[:end], rest[end:]
        if not args:  # `uninstall: ( predicate )`: nothing to remove is a typo, not a no-op
            raise fail(f"{keyword} needs a package or file before its predicate")
        # helpers.sh's uninstall: an absolute path removes a file, anything else a package
        for a in args:
            if a.startswith("/"):
                check_path(a, "uninstall: file", path, lineno)
            else:
                check_name(a, "uninstall: package", path, lineno)
        arg = " ".join(args)
    else:
        arg, rest = rest[0], rest[1:]
        # it becomes a step, attribute and file name, and a path below steps/
        check_name(arg, f"{keyword} name", path, lineno)

    predicate = None
    predicate_text = None
    if rest:
        predicate = parse_predicate(rest, path, lineno)
        predicate_text = " ".join(rest)
        _check_nix_holds(predicate_text, path, lineno)
    return Entry(
        line=lineno, kind=kind, arg=arg, predicate=predicate, predicate_text=predicate_text
    )


def _parse_define(rest: list[str], path: str, lineno: int) -> Entry:
    name = check_variable(rest[0], "define: variable", path, lineno)
    if len(rest) < 2 or rest[1] != "=":
        raise ParseError(
            f"define of {name} has a missing equals",
            file=path,
            line=lineno,
            hint="write: define: NAME = VALUE [( predicate )]",
        )
    value = rest[2:]
    if not value:
        raise ParseError(f"define of {name} has no value", file=path, line=lineno)
    constant: str | None = None
    expr: Expr | None = None
    if value[0] == "(":
        expr, used = parse_logic(value, path, lineno)
        tail = value[used:]
    else:
        constant, tail = value[0], value[1:]
    predicate = parse_predicate(tail, path, lineno) if tail else None
    return Entry(
        line=lineno,
        kind="define",
        arg=name,
        define_name=name,
        define_constant=constant,
        define_expr=expr,
        predicate=predicate,
        predicate_text=" ".join(tail) if tail else None,
    )


def _check_nix_holds(predicate_text: str, path: str, lineno: int) -> None:
    """A step's predicate becomes a Nix string in its step file: one Nix cannot hold (NUL, a
    lone surrogate) is refused here, at its line, so the printer never fails on it."""
    try:
        nix_string(predicate_text)
    except GenerateError as exc:
        raise ParseError(f"predicate: {exc.message}", file=path, line=lineno) from None
