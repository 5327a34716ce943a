"""Command line: ``main(argv)`` is callable in-process (tests do), returns the exit code.

Data goes to stdout, logs and errors to stderr. Domain errors are caught here, once.
Each subcommand lives in its own module under ``orchestrator.commands`` and exposes
``register(subparsers)``; the parser it adds carries ``func=run`` returning an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from collections.abc import Sequence

from rich.console import Console

from orchestrator import __version__
from orchestrator.display import lines, text
from orchestrator.errors import GenerateError, OrchestratorError

# Subcommand modules, in the order `--help` lists them.
COMMANDS = [
    "generate",
    "plan",
    "distfiles",
    "build",
    "audit",
    "verify",
    "report",
    "nar",
    "narinfo",
    "diff",
    "update",
    "bump",
    "checkout",
]

err_console = Console(stderr=True, highlight=False)


class UsageError(OrchestratorError):
    """A command line argparse refused (exit 2, as argparse's own)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (and so reported like any other, also as JSON)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message, hint=f"{self.prog} --help")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's module is imported (fast start-up)."""
    parser = Parser(
        prog="orchestrator",
        description="Bootstrap Nix from the live-bootstrap chain: generate, plan, build, verify.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else [only]:
        module = importlib.import_module(f".commands.{name.replace('-', '_')}", __package__)
        module.register(sub)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named by argv, if it is unambiguous before parsing."""
    for arg in argv:
        if arg.startswith("-"):
            return None  # a global option (--help, --version) first: build everything
        return arg if arg in COMMANDS else None
    return None


def error_object(exc: OrchestratorError) -> dict[str, object]:
    """What ``--json`` prints on stdout when a command fails: the error, where, and the hint."""
    return {
        "error": exc.message,
        "file": exc.file,
        "line": exc.line,
        "hint": exc.hint,
        "exit_code": exc.exit_code,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from orchestrator import nixcli
    from orchestrator.upstream.locate import explain_fetch_failure, nix_input_args

    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    try:
        parser = build_parser(_chosen(argv))
        args = parser.parse_args(argv)
        want_json = bool(getattr(args, "json", False))
        # --live-bootstrap PATH / $LIVE_BOOTSTRAP: what every nix call of this command evaluates
        # (only commands that take the option; the others never see $LIVE_BOOTSTRAP). A path
        # Nix cannot take is an error only when a nix call needs it (plan just reads the tree).
        inputs: list[str] = []
        unusable: OrchestratorError | None = None
        try:
            inputs = nix_input_args(args.live_bootstrap) if hasattr(args, "live_bootstrap") else []
        except GenerateError as exc:
            unusable = exc
        explain = None if inputs or unusable else explain_fetch_failure
        with nixcli.flake_inputs(inputs, explain, unusable):
            return int(args.func(args) or 0)
    except OrchestratorError as exc:
        # the message quotes upstream text: printed literally (display.py)
        err_console.print(text(("error:", "bold red"), " ") + lines(str(exc)), soft_wrap=True)
        if want_json and not getattr(exc, "json_printed", False):
            with contextlib.suppress(BrokenPipeError):
                print(json.dumps(error_object(exc), indent=1))
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
