"""The one grammar of upstream tokens that become names or paths (documented in
docs/architecture.md, "Names and paths").

Every token the model takes from a live-bootstrap tree and later uses as a step name, a Nix
attribute or file name, a distfile (store path) name or a path inside a step's output is checked
here with ``fullmatch`` -- never ``match`` with ``$``, which accepts a trailing newline -- and a
token outside the grammar is a ``ParseError`` naming the upstream file and line. Everything
generated from these tokens (``<pkg>-pass<N>.nix``, ``steps/<pkg>/sources``, ...) is then built
only from checked parts, so no upstream text can reach a path outside ``steps/`` or a Nix
expression as syntax.

The grammar is deliberately narrower than what a filesystem or Nix allows: it is what
live-bootstrap's tree actually uses (every token of both fixture revisions fits), so anything
else is far more likely an attack or a mistake than a new convention.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from orchestrator.errors import ParseError

# Nix's limit on a store path name is 211 (StorePath::MaxPathLen in Nix 2.8); a distfile is a
# fixed-output derivation of that name, whose own path ``<name>.drv`` must fit too.
STORE_NAME_MAX = 211 - len(".drv")
# A step name becomes a derivation name with a prefix and a suffix (``<prefix><name>-pass<N>``),
# so it is kept well below the store limit.
NAME_MAX = 160

# NAME: a package or script name (``build:``, ``improve:``, ``jump:``, ``uninstall:`` packages).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
# STORE_NAME: a file that becomes a Nix store path (distfiles, package tarballs): exactly the
# characters Nix accepts in a store path name, no leading '.'.
STORE_NAME_RE = re.compile(r"[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]*")
# PATH: an absolute path inside a step's root filesystem, components as NAME without a leading
# '.', so neither '.' nor '..' nor an empty component can appear.
_COMPONENT = r"[A-Za-z0-9+_-][A-Za-z0-9+._-]*"
PATH_RE = re.compile(rf"(?:/{_COMPONENT})+")
# RELPATH: a generated file below steps/ (the same components, relative).
RELPATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# VARIABLE: a bootstrap.cfg variable (``define:`` names).
VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_HINTS = {
    "name": "names are letters, digits and + . _ - (not starting with . + _ -), "
    f"at most {NAME_MAX} characters",
    "store name": "store path names are letters, digits and + - . _ ? = (not starting with .), "
    f"at most {STORE_NAME_MAX} characters",
    "path": "paths are absolute, '/'-separated names of letters, digits and + . _ - "
    "(no component '.', '..' or starting with '.'; no '//')",
    "variable": "variables are letters, digits and _, not starting with a digit",
}


def _check(
    kind: str,
    pattern: re.Pattern[str],
    limit: int | None,
    token: str,
    what: str,
    file: str | PurePath | None,
    line: int | None,
) -> str:
    if pattern.fullmatch(token) is None or (limit is not None and len(token) > limit):
        shown = token if len(token) <= 80 else token[:77] + "..."
        raise ParseError(
            f"{what} {shown!r} is not a valid {kind}", file=file, line=line, hint=_HINTS[kind]
        )
    return token


def check_name(token: str, what: str, file: str | PurePath | None, line: int | None) -> str:
    return _check("name", NAME_RE, NAME_MAX, token, what, file, line)


def check_store_name(token: str, what: str, file: str | PurePath | None, line: int | None) -> str:
    return _check("store name", STORE_NAME_RE, STORE_NAME_MAX, token, what, file, line)


def check_path(token: str, what: str, file: str | PurePath | None, line: int | None) -> str:
    return _check("path", PATH_RE, None, token, what, file, line)


def check_variable(token: str, what: str, file: str | PurePath | None, line: int | None) -> str:
    return _check("variable", VARIABLE_RE, None, token, what, file, line)


def is_store_name(token: str) -> bool:
    return STORE_NAME_RE.fullmatch(token) is not None and len(token) <= STORE_NAME_MAX


def is_relpath(token: str) -> bool:
    return RELPATH_RE.fullmatch(token) is not None
