"""Predicates of the manifest: script-generator.c's recursive-descent ``logic``.

Grammar (no precedence, no nesting, right-recursive)::

    predicate = "(" logic ")"
    logic     = NAME                       -- a constant: evaluates to the literal NAME
              | NAME ("==" | "!=") VALUE [("||" | "&&") logic]

So ``A == x || B == y && C == z`` means ``A == x || (B == y && C == z)``. Every comparison
yields the string ``True`` or ``False``; a predicate holds when its value is exactly ``True``.
Unset variables read as the empty string.
"""

from __future__ import annotations

from typing import Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ParseError


class Const(BaseModel):
    model_config = ConfigDict(frozen=True)
    value: str


class Compare(BaseModel):
    model_config = ConfigDict(frozen=True)
    var: str
    op: Literal["==", "!="]
    value: str
    # the right-hand rest of the chain, if any
    join: Literal["||", "&&"] | None = None
    rest: Expr | None = None


Expr = Union[Const, Compare]  # noqa: UP007 -- pydantic needs a real Union for the forward ref
Compare.model_rebuild()


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
    pos = 1

    def need(i: int, what: str) -> str:
        if i >= len(tokens):
            raise fail(f"unbalanced predicate: expected {what} before the end of the line")
        return tokens[i]

    def logic(i: int) -> tuple[Expr, int]:
        lhs = need(i, "a name")
        if lhs in ("(", ")", "==", "!=", "||", "&&"):
            raise fail(f"expected a name, found {lhs!r} (predicates do not nest)")
        op = need(i + 1, "')', '==' or '!='")
        if op == ")":
            return Const(value=lhs), i + 1
        if op not in ("==", "!="):
            raise fail(f"expected == or != after {lhs}, found {op!r}")
        value = need(i + 2, f"a value after {op}")
        if value in ("(", ")", "||", "&&"):
            raise fail(f"expected a value after {op}, found {value!r}")
        nxt = need(i + 3, "')', '||' or '&&'")
        if nxt == ")":
            return Compare(var=lhs, op=op, value=value), i + 3  # type: ignore[arg-type]
        if nxt not in ("||", "&&"):
            raise fail(f"expected || or && in logic, found {nxt!r}")
        rest, j = logic(i + 4)
        return Compare(var=lhs, op=op, value=value, join=nxt, rest=rest), j  # type: ignore[arg-type]

    expr, pos = logic(pos)
    # ``pos`` indexes the closing parenthesis
    return expr, pos + 1


class Lookup(Protocol):
    def get(self, name: str, default: str = ..., /) -> str: ...


def evaluate(expr: Expr, variables: Lookup) -> str:
    """The string value script-generator computes: a constant, ``True`` or ``False``."""
    if isinstance(expr, Const):
        return expr.value
    equal = variables.get(expr.var, "") == expr.value
    lhs = "True" if equal == (expr.op == "==") else "False"
    if expr.rest is None:
        return lhs
    rhs = evaluate(expr.rest, variables)
    if expr.join == "||":
        return "True" if "True" in (lhs, rhs) else "False"
    return "True" if lhs == "True" and rhs == "True" else "False"


def holds(expr: Expr | None, variables: Lookup) -> bool:
    return expr is None or evaluate(expr, variables) == "True"


def variables_of(expr: Expr | None) -> list[str]:
    """Names a predicate reads, in order of appearance, without repeats."""
    out: list[str] = []
    while isinstance(expr, Compare):
        if expr.var not in out:
            out.append(expr.var)
        expr = expr.rest
    return out


def render(expr: Expr) -> str:
    """Back to manifest syntax (used in messages and reports)."""

    def inner(e: Expr) -> str:
        if isinstance(e, Const):
            return e.value
        s = f"{e.var} {e.op} {e.value}"
        if e.rest is not None:
            s += f" {e.join} {inner(e.rest)}"
        return s

    return f"( {inner(expr)} )"
