"""What `build`, `verify` and `audit` name: the flake, its chain's targets, and the installable
that a TARGET on the command line becomes."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from orchestrator.bridge.members import load as load_bridge
from orchestrator.build.progress import StepIndex, StepRef
from orchestrator.errors import OrchestratorError
from orchestrator.nixstr import attr_path, flake_installable
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import REPO_ROOT, read_tree

SPECIAL_TARGETS = ("live-bootstrap", "stage0", "bridge")
DEFAULT_TARGET = "live-bootstrap"


def default_flake() -> str:
    """The flake of this repository when running from a checkout of it, else the current one."""
    return str(REPO_ROOT) if (REPO_ROOT / "flake.nix").is_file() else "."


def installable(target: str, flake: str | None = None) -> str:
    """TARGET as given when it is an installable already, else the flake's attribute TARGET
    (one name: a step attribute's dots are part of it)."""
    if "#" in target or target.startswith("/"):
        return target
    if BRIDGE_MEMBER.fullmatch(target):  # bridge.<member>: an attribute of packages.bridge
        return flake_installable(flake or default_flake(), target.split("."))
    return flake_installable(flake or default_flake(), [target])


BRIDGE_MEMBER = re.compile(r"bridge\.[a-z0-9-]+")


def bridge_steps() -> list[tuple[str, Any]]:
    """The stdenv bridge's steps (stdenv-bridge/members.json), numbered after the chain's."""
    return [
        (s.attr, SimpleNamespace(name=f"{s.name}-{s.version}", pass_no=None, directive="bridge"))
        for s in load_bridge().steps
    ]


@dataclass(frozen=True)
class TargetSource:
    """Where TARGET comes from: the flake (default), or a Nix file with arguments."""

    flake: str | None = None
    file: str | None = None
    args: list[tuple[str, str]] = field(default_factory=list)  # --arg NAME EXPR
    argstrs: list[tuple[str, str]] = field(default_factory=list)  # --argstr NAME STRING


def installable_args(target: str, source: TargetSource) -> list[str]:
    """The installable part of a nix command line for TARGET."""
    extra = [x for name, value in source.args for x in ("--arg", name, value)]
    extra += [x for name, value in source.argstrs for x in ("--argstr", name, value)]
    if source.file:
        return ["--file", source.file, attr_path([target]), *extra]
    return [installable(target, source.flake), *extra]


def chain_steps(live_bootstrap: str | None = None) -> list[tuple[str, Any]]:
    chain = load_chain(read_tree(live_bootstrap))
    return [(s.step.attr_name, s.step) for s in chain.steps]


def step_index(target: str, steps: list[tuple[str, Any]]) -> StepIndex:
    """Steps of the chain that ``target`` contains (all of it unless it is a step)."""
    attrs = [a for a, _ in steps]
    n = attrs.index(target) + 1 if target in attrs else len(steps)
    return StepIndex(
        [
            StepRef(attr=a, index=i, total=n, name=s.name, pass_no=s.pass_no, directive=s.directive)
            for i, (a, s) in enumerate(steps[:n])
        ]
    )


def resolve_target(target: str | None, until: str | None, steps: list[tuple[str, Any]]) -> str:
    attrs = [a for a, _ in steps]
    if until:
        if target and target != DEFAULT_TARGET:
            raise OrchestratorError(
                f"give either TARGET ({target}) or --until {until}, not both",
                hint="--until STEP builds the chain up to STEP",
            )
        if until not in attrs:
            raise OrchestratorError(
                f"--until {until}: no such step", hint=did_you_mean(until, attrs)
            )
        return until
    return target or DEFAULT_TARGET


def did_you_mean(name: str, attrs: list[str]) -> str:
    close = difflib.get_close_matches(name, attrs, n=3, cutoff=0.5)
    if close:
        return (
            "did you mean " + " or ".join(close) + "? (`python -m orchestrator plan` lists steps)"
        )
    return "`python -m orchestrator plan` lists the steps"
