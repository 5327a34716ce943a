"""Options that several commands share, declared once: each adds the same flags with the same
meaning wherever it is used (only the default named in ``--live-bootstrap``'s help differs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.build.targets import TargetSource
from orchestrator.upstream.locate import OPTION, REPO_ROOT
from orchestrator.upstream.profiles import DEFAULT_PROFILE, available_profiles

LIVE_BOOTSTRAP_HELP = (
    "live-bootstrap tree to use instead of the pinned flake input: a checkout with submodules "
    "(Nix evaluates it, as --override-input live-bootstrap path:PATH), or for reading only a "
    "data-only snapshot; default $LIVE_BOOTSTRAP, else {default}"
)


def live_bootstrap(
    p: argparse.ArgumentParser, default: str = "the committed steps/upstream.json"
) -> None:
    """The one ``--live-bootstrap PATH`` option of every command that reads or evaluates the chain
    (``cli.main`` hands it to every nix call of the command)."""
    p.add_argument(OPTION, metavar="PATH", help=LIVE_BOOTSTRAP_HELP.format(default=default))


def json_output(
    p: argparse._ActionsContainer,  # a parser, or a mutually exclusive group of one
    help: str = "the report as JSON on stdout",
) -> None:
    """``--json``: the result for programs on stdout (on failure, ``cli.error_object``)."""
    p.add_argument("--json", action="store_true", help=help)


def profile(p: argparse.ArgumentParser, help: str) -> None:
    """``--profile NAME``: the bootstrap.cfg (a file of orchestrator/profiles/) predicates see."""
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=available_profiles(), help=help)


def target_source(p: argparse.ArgumentParser) -> None:
    """Where TARGET comes from: the flake (default), or a Nix file with arguments."""
    p.add_argument("--flake", metavar="REF", help="flake to use (default: this repository)")
    p.add_argument("-f", "--file", metavar="FILE", help="TARGET is an attribute of this Nix file")
    p.add_argument(
        "--arg",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "EXPR"),
        help="with --file: pass NAME = the Nix expression EXPR (repeatable)",
    )
    p.add_argument(
        "--argstr",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "STRING"),
        help="with --file: pass NAME = the string STRING (repeatable)",
    )


def target_source_of(args: argparse.Namespace) -> TargetSource:
    """What :func:`target_source` parsed (absent options read as their defaults)."""
    return TargetSource(
        flake=getattr(args, "flake", None),
        file=getattr(args, "file", None),
        args=[(n, v) for n, v in getattr(args, "arg", [])],
        argstrs=[(n, v) for n, v in getattr(args, "argstr", [])],
    )


def steps_dir(
    p: argparse.ArgumentParser, help: str = "generated steps/ whose snapshot and overrides to read"
) -> None:
    """``--steps DIR``: the generated steps/ a command reads (default: the repository's)."""
    p.add_argument("--steps", type=Path, default=REPO_ROOT / "steps", metavar="DIR", help=help)
