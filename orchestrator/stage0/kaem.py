"""kaem, read and run symbolically: stage0-posix's scripts as a list of commands.

kaem's own semantics (``mescc-tools/Kaem/kaem.c`` and ``variable.c``): tokens, ``"strings"``,
``\\`` escapes and line continuations, ``#`` comments, ``;``, ``${VAR}``, ``${VAR:-text}``,
``$@``, assignments, ``alias``, ``cd``, ``set``, ``if ...; then ... else ... fi``, ``exec``,
nested ``kaem --file``. The :class:`Interpreter` records every program the scripts run as a
:class:`Command`: tool, arguments (each classified as literal, source file, earlier artifact or
output), working directory, and the environment the tool reads. Nothing here runs a tool; the
translation into derivations is ``stage0.py``'s.

``kaem-optional-seed`` (kaem-minimal.hex0) runs the first two scripts; they use only the subset
of kaem it shares with the full kaem (no variables), so one reader serves all scripts.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import ParseError, TreeError
from orchestrator.upstream.tree import SourceTree

STAGE0 = "seed/stage0-posix"  # where stage0-posix lives in live-bootstrap

# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------
ArgKind = Literal["literal", "source", "source-dir", "artifact", "output"]


class Arg(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str  # exactly what kaem passes
    kind: ArgKind
    path: str | None = None  # stage0-posix-relative path for everything but literals


class Command(BaseModel):
    """One program run by the scripts, as kaem would run it."""

    script: str  # stage0-posix-relative path of the script
    line: int
    cwd: str  # stage0-posix-relative, "" for the top
    tool: str  # stage0-posix-relative path of the program
    tool_kind: Literal["source", "artifact"]
    args: list[Arg]  # argv[1:]
    env: dict[str, str]  # the script-assigned variables visible to the program
    output: str | None = None  # stage0-posix-relative path written, None for a check
    check_files: list[str] = Field(default_factory=list)  # for `sha256sum -c`: files it reads

    @property
    def tool_name(self) -> str:
        return posixpath.basename(self.tool)

    @property
    def text(self) -> str:
        return " ".join([self.tool] + [a.text for a in self.args])


# ------------------------------------------------------------------------------------------
# The kaem reader (kaem.c collect_command / collect_token / collect_string, variable.c)
# ------------------------------------------------------------------------------------------
def _escape(c: str | None) -> str | None:
    """kaem.c handle_escape: None means 'eat it' (a backslash-newline)."""
    if c == "\n":
        return None
    if c == "n":
        return "\n"
    if c == "r":
        return "\r"
    return c


class KaemReader:
    """Reads a kaem script command by command, as kaem.c does."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        self.line = 1

    def _getc(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        c = self.text[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def _error(self, message: str) -> ParseError:
        return ParseError(message, file=self.file, line=self.line)

    def _token(self) -> tuple[str, bool, bool]:
        """(token, command done, end of file)."""
        buf: list[str] = []
        while True:
            c = self._getc()
            if c is None:
                return "", True, True
            if c in " \t":
                break
            if c in "\n;":
                return _cstr(buf), True, False
            if c == '"':
                self._string(buf)
                break
            if c == "#":
                while True:
                    c = self._getc()
                    if c is None:
                        raise self._error(
                            "improperly terminated line comment (no newline before the end)"
                        )
                    if c == "\n":
                        break
                return _cstr(buf), True, False
            if c == "\\":
                nxt = self._getc()
                if nxt is None:
                    raise self._error("backslash at the end of the file")
                esc = _escape(nxt)
                # kaem advances past an eaten newline, leaving a NUL that ends the C string
                buf.append("\0" if esc is None else esc)
                continue
            if c == "\0":
                break
            buf.append(c)
        return _cstr(buf), False, False

    def _string(self, buf: list[str]) -> None:
        while True:
            c = self._getc()
            if c is None:
                raise self._error("improperly terminated string")
            if c == "\\":
                nxt = self._getc()
                esc = _escape(nxt)
                if esc is None:
                    raise self._error("backslash-newline inside a string is not supported by kaem")
                buf.append(esc)
            elif c == '"':
                return
            else:
                buf.append(c)

    def command(
        self, lookup: Callable[[str], str | None], aliases: Mapping[str, str], argv: list[str]
    ) -> tuple[list[str], int] | None:
        """The next command's tokens (variables and aliases expanded) and its line; None at
        the end of the script. Like kaem, a last command without a newline is not run."""
        start = self.line
        tokens: list[str] = []
        done = False
        while not done:
            raw, done, eof = self._token()
            if eof:
                return None
            if raw == "":
                continue
            alias = aliases.get(raw)
            pieces = _split_alias(alias) if alias is not None else [raw]
            for piece in pieces:
                value = expand(piece, lookup, argv, file=self.file, line=self.line)
                if value == " ":  # kaem drops a token that expands to a single space
                    continue
                tokens.append(value)
        return tokens, start


def _cstr(buf: list[str]) -> str:
    return "".join(buf).split("\0", 1)[0]


def _split_alias(value: str) -> list[str]:
    """kaem.c collect_alias_token, repeated until the end of the alias."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    while True:
        c = value[i] if i < len(value) else "\0"
        i += 1
        if c in " \t":
            out.append("".join(cur))
            cur = []
        elif c == "\\":
            nxt = value[i] if i < len(value) else "\0"
            i += 1
            esc = _escape(nxt)
            cur.append("\0" if esc is None else esc)
        elif c == "\0":
            out.append("".join(cur))
            return [p.split("\0", 1)[0] for p in out]
        else:
            cur.append(c)


def expand(
    token: str,
    lookup: Callable[[str], str | None],
    argv: list[str],
    *,
    file: str = "",
    line: int | None = None,
) -> str:
    """variable.c handle_variables: ${VAR}, ${VAR:-text} and $@ (undefined expands to nothing)."""
    if "$" not in token:
        return token
    i = token.index("$")
    out = token[:i]
    n = len(token)
    while True:
        i += 1  # the $
        if i < n and token[i] == "{":
            i += 1
            if ":-" in token[i:]:  # variable_substitute_ifset scans to the end of the token
                colon = token.index(":", i)
                name = token[i:colon]
                close = token.find("}", colon + 2)
                if close < 0:
                    raise ParseError("improperly terminated variable", file=file, line=line)
                text = token[colon + 2 : close]
                value = lookup(name)
                out += value if value is not None else text
                i = close
            else:
                name_chars: list[str] = []
                while True:
                    if i >= n or token[i] == "\n":
                        raise ParseError("improperly terminated variable", file=file, line=line)
                    c = token[i]
                    if c == "\\":
                        i += 1
                    elif c == "}":
                        break
                    else:
                        name_chars.append(c)
                        i += 1
                value = lookup("".join(name_chars))
                if value is not None:
                    out += value
            i += 1  # the }
        elif i < n and token[i] == "@":
            i += 1
            # variable_all: replaces the token so far with kaem's arguments from "--" on
            out = " ".join(argv[argv.index("--") :]) if "--" in argv else ""
        else:
            raise ParseError(
                "improperly used variable: only ${foo} and $@ are accepted", file=file, line=line
            )
        while i < n and token[i] != "$":
            out += token[i]
            i += 1
        if i >= n:
            return out


# ------------------------------------------------------------------------------------------
# The interpreter: scripts -> commands
# ------------------------------------------------------------------------------------------
class _Frame(BaseModel):
    """One kaem process: its environment, aliases and working directory."""

    env: dict[str, str]
    aliases: dict[str, str] = Field(default_factory=dict)
    cwd: str
    argv: list[str] = Field(default_factory=list)


class Interpreter:
    """Runs the scripts symbolically over a virtual tree: the stage0-posix sources plus the
    artifacts commands have written so far."""

    def __init__(self, tree: SourceTree, root: str = STAGE0) -> None:
        self.tree = tree
        self.root = root.strip("/")
        self.artifacts: dict[str, int] = {}  # path -> index of the command that wrote it
        self.commands: list[Command] = []
        # every file whose text shaped the commands (tree path -> sha256 of its bytes): what
        # steps/stage0/meta.json records the translation was generated from
        self.reads: dict[str, str] = {}

    # -- the virtual tree ----------------------------------------------------------------------
    def tree_path_of(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def is_source_file(self, path: str) -> bool:
        return self.tree.kind(self.tree_path_of(path)) in ("file", "executable")

    def is_file(self, path: str) -> bool:
        return path in self.artifacts or self.is_source_file(path)

    def is_dir(self, path: str) -> bool:
        if path == "" or self.tree.is_dir(self.tree_path_of(path)):
            return True
        prefix = path + "/"
        return any(p.startswith(prefix) for p in self.artifacts)

    def read_source(self, path: str) -> str:
        tree_path = self.tree_path_of(path)
        text = self.tree.read_text(tree_path)
        self.reads[tree_path] = hashlib.sha256(self.tree.read_bytes(tree_path)).hexdigest()
        return text

    def resolve(self, cwd: str, name: str, *, file: str, line: int) -> str | None:
        """A path relative to cwd as a stage0-posix-relative path; None if it leaves the tree."""
        if name.startswith("/") or name == "":
            return None
        joined = posixpath.normpath(posixpath.join(cwd, name)) if cwd else posixpath.normpath(name)
        if joined == ".":
            return ""
        if joined == ".." or joined.startswith("../"):
            return None
        return joined

    # -- running -------------------------------------------------------------------------------
    def run(
        self,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str = "",
        argv: list[str] | None = None,
    ) -> list[Command]:
        frame = _Frame(env=dict(env or {}), cwd=cwd, argv=list(argv or []))
        self._run_script(script, frame)
        return self.commands

    def _run_script(self, script: str, frame: _Frame) -> None:
        if not self.is_source_file(script):
            raise TreeError(
                "kaem script not found (a kaem run on a missing file aborts)",
                file=self.tree_path_of(script),
            )
        reader = KaemReader(self.read_source(script), file=self.tree_path_of(script))
        lookup = frame.env.get
        while True:
            cmd = reader.command(lookup, frame.aliases, frame.argv)
            if cmd is None:
                return
            tokens, line = cmd
            if not tokens:
                continue
            if tokens[0] == "if":
                self._if(reader, frame, script, tokens[1:], line)
                continue
            if self._execute(frame, script, tokens, line) == "exec":
                return

    def _if(
        self, reader: KaemReader, frame: _Frame, script: str, condition: list[str], line: int
    ) -> None:
        """kaem.c if_cmd: commands up to `fi`, run while the status is 0; `else` flips it."""
        status = self._condition(frame, script, condition, line)
        while True:
            cmd = reader.command(frame.env.get, frame.aliases, frame.argv)
            if cmd is None:
                raise ParseError(
                    "unexpected end of file: `if` without `fi`",
                    file=self.tree_path_of(script),
                    line=line,
                )
            tokens, cline = cmd
            if not tokens:
                continue
            if status == 0:
                if tokens[0] == "if":
                    raise ParseError(
                        "nested `if` (kaem does not nest them)",
                        file=self.tree_path_of(script),
                        line=cline,
                    )
                if self._execute(frame, script, tokens, cline) == "exec":
                    raise ParseError(
                        "`exec` inside `if` is not supported",
                        file=self.tree_path_of(script),
                        line=cline,
                    )
            if tokens[0] == "else":
                status = 0 if status else 1
            if tokens[0] == "fi":
                return

    def _condition(self, frame: _Frame, script: str, tokens: list[str], line: int) -> int:
        """Conditions are evaluated here, statically: `match A B` (mescc-tools-extra's match
        compares two strings)."""
        if tokens and "=" not in tokens[0]:
            program = self._find_program(frame, script, tokens[0], line)
            if posixpath.basename(program) == "match" and len(tokens) == 3:
                return 0 if tokens[1] == tokens[2] else 1
        raise ParseError(
            f"cannot evaluate the `if` condition statically: {' '.join(tokens)}",
            file=self.tree_path_of(script),
            line=line,
            hint="only `if match A B; then` is supported",
        )

    def _execute(self, frame: _Frame, script: str, tokens: list[str], line: int) -> str | None:
        where: dict[str, Any] = {"file": self.tree_path_of(script), "line": line}
        head = tokens[0]
        if "=" in head:  # kaem.c is_envar: an assignment, the rest of the line is ignored
            name, _, value = head.partition("=")
            frame.env[name] = value
            return None
        if head == "cd":
            if len(tokens) < 2:
                raise ParseError("cd without a directory", **where)
            target = self.resolve(frame.cwd, tokens[1], **where)
            if target is None or not self.is_dir(target):
                raise ParseError(f"cd {tokens[1]}: no such directory in stage0-posix", **where)
            frame.cwd = target
            return None
        if head == "set":
            if len(tokens) > 1:
                for opt in tokens[1][1:]:
                    if opt not in "aex":
                        raise ParseError(f"{opt} is an invalid set option", **where)
            return None
        if head == "alias":
            if len(tokens) > 1 and "=" in tokens[1]:
                name, _, value = tokens[1].partition("=")
                if value == "":
                    raise ParseError("alias received an improper variable", **where)
                frame.aliases[name] = value
            return None
        if head == "unset":
            for name in tokens[1:]:
                frame.env.pop(name, None)
            return None
        if head in ("pwd", "echo", "then", "else", "fi"):
            return None
        exec_ = head == "exec"
        if exec_:
            tokens = tokens[1:]
            if not tokens:
                raise ParseError("exec without a program", **where)
        program = self._find_program(frame, script, tokens[0], line)
        if posixpath.basename(program).startswith("kaem"):
            self._kaem(frame, script, program, tokens[1:], line)
        else:
            self._record(frame, script, program, tokens[1:], line)
        return "exec" if exec_ else None

    def _find_program(self, frame: _Frame, script: str, name: str, line: int) -> str:
        """kaem.c find_executable, over the virtual tree."""
        where: dict[str, Any] = {"file": self.tree_path_of(script), "line": line}
        if name.startswith("/"):
            raise ParseError(f"{name}: an absolute program path is outside stage0-posix", **where)
        if name.startswith("."):
            path = self.resolve(frame.cwd, name, **where)
            if path is None or not self.is_file(path):
                raise ParseError(f"{name}: no such program (yet) in stage0-posix", **where)
            return path
        path_var = frame.env.get("PATH")
        if path_var is None:
            raise ParseError(
                f"{name}: found through PATH, which the scripts did not set (that would run a host program)",
                **where,
            )
        for entry in path_var.split(":"):
            d = self.resolve(frame.cwd, entry, **where)
            if d is None:
                continue
            candidate = f"{d}/{name}" if d else name
            if self.is_file(candidate):
                return candidate
        raise ParseError(f"{name}: not found in PATH={path_var}", **where)

    def _kaem(self, frame: _Frame, script: str, program: str, args: list[str], line: int) -> None:
        """A nested kaem: interpret its script in a child frame (kaem.c main's options)."""
        where: dict[str, Any] = {"file": self.tree_path_of(script), "line": line}
        file = "kaem.run"
        init_mode = False
        i = 0
        rest: list[str] = []
        # kaem-optional-seed (kaem-minimal.hex0) takes the script as its only argument
        if args and not args[0].startswith("-"):
            file, i = args[0], 1
        while i < len(args):
            a = args[i]
            if a in ("-f", "--file"):
                if i + 1 < len(args):
                    file = args[i + 1]
                i += 2
            elif a in ("-i", "--init-mode"):
                init_mode = True
                i += 1
            elif a in ("-v", "--verbose", "--strict", "--warn", "--fuzz", "--show-exit-codes"):
                i += 1
            elif a == "--non-strict":
                raise ParseError(
                    "kaem --non-strict: failures would be ignored; not supported", **where
                )
            elif a == "--":
                rest = args[i:]
                break
            else:
                raise ParseError(f"kaem: unknown argument {a}", **where)
        target = self.resolve(frame.cwd, file, **where)
        if target is None:
            raise ParseError(f"kaem --file {file}: outside stage0-posix", **where)
        child = _Frame(
            env={} if init_mode else dict(frame.env),
            cwd=frame.cwd,
            argv=[program, *args[: len(args) - len(rest)], *rest],
        )
        self._run_script(target, child)

    def _record(self, frame: _Frame, script: str, program: str, args: list[str], line: int) -> None:
        where: dict[str, Any] = {"file": self.tree_path_of(script), "line": line}
        classified: list[Arg] = []
        for text in args:
            classified.append(self._classify(frame.cwd, text, where))
        tool_name = posixpath.basename(program)
        output: str | None = None
        check_files: list[str] = []
        if tool_name == "sha256sum" and "-c" in args:
            sums = [a for a in classified if a.kind in ("source", "artifact")]
            if len(sums) != 1 or sums[0].kind != "source":
                raise ParseError(
                    "sha256sum -c: expected one checksum file from the sources", **where
                )
            for n, entry in enumerate(self.read_source(sums[0].path or "").splitlines(), 1):
                if not entry.strip():
                    continue
                parts = entry.split(maxsplit=1)
                if len(parts) != 2:
                    raise ParseError(
                        "expected '<sha256>  <path>'",
                        file=self.tree_path_of(sums[0].path or ""),
                        line=n,
                    )
                listed = self.resolve(frame.cwd, parts[1].strip(), **where)
                if listed is None or not self.is_file(listed):
                    raise ParseError(
                        f"sha256sum -c: {parts[1].strip()} does not exist at this point", **where
                    )
                check_files.append(listed)
        else:
            flagged = [
                i + 1 for i, a in enumerate(args) if a in ("-o", "--output") and i + 1 < len(args)
            ]
            if flagged:
                index = flagged[-1]
            else:
                candidates = [
                    i for i, a in enumerate(classified) if a.kind == "literal" and "/" in a.text
                ]
                if len(candidates) != 1:
                    raise ParseError(
                        f"cannot tell which argument of {tool_name} is its output "
                        f"(no -o/--output; {len(candidates)} path(s) that do not exist yet)",
                        **where,
                    )
                index = candidates[0]
            out_path = self.resolve(frame.cwd, args[index], **where)
            if out_path is None:
                raise ParseError(f"{args[index]}: output outside stage0-posix", **where)
            parent = posixpath.dirname(out_path)
            if not self.is_dir(parent):
                raise ParseError(f"{args[index]}: its directory does not exist", **where)
            classified[index] = Arg(text=args[index], kind="output", path=out_path)
            output = out_path
        command = Command(
            script=script,
            line=line,
            cwd=frame.cwd,
            tool=program,
            tool_kind="artifact" if program in self.artifacts else "source",
            args=classified,
            env=dict(frame.env),
            output=output,
            check_files=check_files,
        )
        self.commands.append(command)
        if output is not None:
            self.artifacts[output] = len(self.commands) - 1

    def _classify(self, cwd: str, text: str, where: dict[str, Any]) -> Arg:
        path = self.resolve(cwd, text, **where) if text and not text.startswith("-") else None
        if path is not None and path != "":
            if path in self.artifacts:
                return Arg(text=text, kind="artifact", path=path)
            if self.is_source_file(path):
                return Arg(text=text, kind="source", path=path)
            if "/" in text and self.tree.is_dir(self.tree_path_of(path)):
                return Arg(text=text, kind="source-dir", path=path)
        return Arg(text=text, kind="literal")
