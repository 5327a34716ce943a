"""Domain errors. Every error the user can cause carries the file, the line and a hint.

They are raised anywhere and caught exactly once, in ``cli.main``, which prints them on stderr
and turns them into a non-zero exit code. Nothing else in the package prints tracebacks.
"""

from __future__ import annotations

from pathlib import PurePath


class OrchestratorError(Exception):
    """An error the user can act on."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | PurePath | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.hint = hint

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ParseError(OrchestratorError):
    """Upstream data that does not follow the syntax script-generator.c accepts."""


class TreeError(OrchestratorError):
    """A path the chain needs is missing from the live-bootstrap tree."""


class GenerateError(OrchestratorError):
    """Generation refused; nothing was written."""


class StaleError(OrchestratorError):
    """``generate --check`` found drift between the tree and the committed steps/."""

    exit_code = 1


class NixError(OrchestratorError):
    """A nix command failed."""


class InputUnavailable(NixError):
    """The pinned live-bootstrap input is not in the store and cannot be fetched."""
