"""Before building: the target's closure, what of it Nix must build, and the distfiles it lacks."""

from __future__ import annotations

from orchestrator import nixcli
from orchestrator.build.closure import FETCHURL, Derivation, load_closure
from orchestrator.build.targets import SPECIAL_TARGETS, did_you_mean
from orchestrator.errors import NixError, OrchestratorError

SEED_COMMAND = "python -m orchestrator distfiles seed DIR"
MIRROR_COMMAND = "python -m orchestrator distfiles mirror DIR"


class BuildFailed(NixError):
    """The build failed; the exit code is Nix's."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class MissingDistfiles(BuildFailed):
    """Distfiles not in the store that Nix could not (or was told not to) fetch."""


class Plan:
    """The closure of the target and what of it is not in the store yet."""

    def __init__(self, closure: dict[str, Derivation], invalid: set[str]) -> None:
        self.closure = closure
        self.to_build = [
            d.path for d in closure.values() if any(p in invalid for p in d.output_paths)
        ]
        self.missing_distfiles = [
            self.closure[d] for d in self.to_build if self.closure[d].builder == FETCHURL
        ]


def closure_of(inst: list[str], target: str, attrs: list[str]) -> dict[str, Derivation]:
    """The derivation closure of TARGET (evaluation only); a missing attribute is a user error."""
    try:
        return load_closure(inst)
    except NixError as exc:
        if "does not provide attribute" in exc.message or "not found" in exc.message:
            hint = (
                f"{target} is a step of the generated chain, but the flake does not expose it: "
                "are the steps wired into the flake's packages (nix/default.nix)?"
                if target in attrs
                else did_you_mean(target, [*SPECIAL_TARGETS, *attrs])
            )
            raise OrchestratorError(f"the flake has no target {target!r}", hint=hint) from None
        raise


def make_plan(inst: list[str], target: str, attrs: list[str]) -> Plan:
    closure = closure_of(inst, target, attrs)
    outputs = [p for d in closure.values() for p in d.output_paths]
    return Plan(closure, nixcli.invalid_paths(outputs))


def missing_message(missing: list[Derivation], *, attempted: bool) -> tuple[str, str]:
    lines = [
        f"{len(missing)} distfile(s) are not in the Nix store"
        + (" and could not be downloaded:" if attempted else ":")
    ]
    for d in sorted(missing, key=lambda d: d.name):
        out = next(iter(d.outputs.values()))
        url = d.env.get("url", "")
        lines.append(f"  {d.name}  sha256 {out.hash}  {url}")
    hint = (
        f"put them in a directory (live-bootstrap's distfiles/ or a mirror.sh mirror) and run "
        f"`{SEED_COMMAND}`; with a network, `{MIRROR_COMMAND}` downloads them"
    )
    return "\n".join(lines), hint
