"""Predicates of the manifest: script-generator.c's recursive-descent ``logic``, without recursion.

Grammar (no precedence, no nesting, right-recursive)::

    predicate = "(" logic ")"
    logic     = NAME                       -- a constant: evaluates to the literal NAME
              | NAME ("==" | "!=") VALUE [("||" | "&&") logic]

So ``A == x || B == y && C == z`` means ``A == x || (B == y && C == z)``. Every comparison
yields the string ``True`` or ``False``; a predicate holds when its value is exactly ``True``.
Unset variables read as the empty string.

Because the recursion is only ever on the right, a ``logic`` is a flat chain: terms joined by
connectives, every term a comparison except possibly the last (a constant). It is stored as two
lists and evaluated from the right, so a predicate of any length parses and evaluates in
constant stack depth (C recurses; Python's stack would end in a RecursionError).
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ParseError

Join = Literal["||", "&&"]


class Const(BaseModel):
    model_config = ConfigDict(frozen=True)
    value: str


class Compare(BaseModel):
    model_config = ConfigDict(frozen=True)
    var: str
    op: Literal["==", "!="]
    value: str


class Expr(BaseModel):
    """``terms[0] joins[0] (terms[1] joins[1] (... terms[-1]))``; only the last term may be a
    constant, and ``len(joins) == len(terms) - 1``."""

    model_config = ConfigDict(frozen=True)
    terms: list[Compare | Const]
    joins: list[Join]


def parse_predicate(tokens: list[str], path: str, lineno: int) -> Expr:
    """Parse ``( logic )`` that must cover all ``tokens``."""
    expr, used = parse_logic(tokens, path, lineno)
    if used != len(tokens):
        raise ParseError(
            f"unexpected {' '.join(tokens[used:])!r} after the predicate",
            file=path,
            line=lineno,
        )
    return expr


def parse_logic(tokens: list[str], path: str, lineno: int) -> tuple[Expr, int]:
    """Parse ``( logic )`` at the start of ``tokens``; return it and the tokens consumed."""

    def fail(msg: str) -> ParseError:
        return ParseError(
            msg,
            file=path,
            line=lineno,
            hint="predicates look like ( NAME == VALUE || NAME != VALUE ), tokens separated by one space",
        )

    if not tokens or tokens[0] != "(":
        raise fail("expected the predicate to begin with (")

    def need(i: int, what: str) -> str:
        if i >= len(tokens):
            raise fail(f"unbalanced predicate: expected {what} before the end of the line")
        return tokens[i]

    terms: list[Compare | Const] = []
    joins: list[Join] = []
    i = 1
    while True:  # one ``logic`` per round: what C's right recursion would descend into
        lhs = need(i, "a name")
        if lhs in ("(", ")", "==", "!=", "||", "&&"):
            raise fail(f"expected a name, found {lhs!r} (predicates do not nest)")
        op = need(i + 1, "')', '==' or '!='")
        if op == ")":
            terms.append(Const(value=lhs))
            close = i + 1
            break
        if op not in ("==", "!="):
            raise fail(f"expected == or != after {lhs}, found {op!r}")
        value = need(i + 2, f"a value after {op}")
        if value in ("(", ")", "||", "&&"):
            raise fail(f"expected a value after {op}, found {value!r}")
        terms.append(Compare(var=lhs, op=op, value=value))
        nxt = need(i + 3, "')', '||' or '&&'")
        if nxt == ")":
            close = i + 3
            break
        if nxt not in ("||", "&&"):
            raise fail(f"expected || or && in logic, found {nxt!r}")
        joins.append(nxt)  # type: ignore[arg-type]
        i += 4
    # ``close`` indexes the closing parenthesis
    return Expr(terms=terms, joins=joins), close + 1


class Lookup(Protocol):
    def get(self, name: str, default: str = ..., /) -> str: ...


def _term(term: Compare | Const, variables: Lookup) -> str:
    if isinstance(term, Const):
        return term.value
    equal = variables.get(term.var, "") == term.value
    return "True" if equal == (term.op == "==") else "False"


def evaluate(expr: Expr, variables: Lookup) -> str:
    """The string value script-generator computes: a constant, ``True`` or ``False``."""
    value = _term(expr.terms[-1], variables)
    # right to left, as the C recursion unwinds; every term is evaluated, as in C
    for term, join in zip(reversed(expr.terms[:-1]), reversed(expr.joins), strict=True):
        lhs = _term(term, variables)
        if join == "||":
            value = "True" if "True" in (lhs, value) else "False"
        else:
            value = "True" if lhs == "True" and value == "True" else "False"
    return value


def holds(expr: Expr | None, variables: Lookup) -> bool:
    return expr is None or evaluate(expr, variables) == "True"


def variables_of(expr: Expr | None) -> list[str]:
    """Names a predicate reads, in order of appearance, without repeats."""
    if expr is None:
        return []
    return list(dict.fromkeys(t.var for t in expr.terms if isinstance(t, Compare)))


def render(expr: Expr) -> str:
    """Back to manifest syntax (used in messages and reports)."""
    parts: list[str] = []
    for i, term in enumerate(expr.terms):
        if i:
            parts.append(expr.joins[i - 1])
        parts.append(
            term.value if isinstance(term, Const) else f"{term.var} {term.op} {term.value}"
        )
    return "( " + " ".join(parts) + " )"
