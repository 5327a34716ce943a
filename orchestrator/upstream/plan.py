"""Resolve the manifest under a profile: what script-generator would emit, as a typed plan.

``define`` and predicates are evaluated top to bottom; the pass number of a surviving directive
is 1 + the number of earlier surviving directives with the same argument (any kind, as in C);
the kaem era lasts up to and including the first ``build: bash-*``, and every ``build: bash-*``
closes its script with the call of the next one (``opens_next_script``: the one place of this rule;
the runner reads it as data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.upstream.manifest import Entry, Manifest
from orchestrator.upstream.predicates import evaluate, holds, variables_of
from orchestrator.upstream.profiles import Profile

Era = Literal["kaem", "bash"]

# Upstream's CI (.github/workflows/bwrap.yml) runs the chain as three jobs of `rootfs.py --bwrap
# --internal-ci passN`; pass1's bootstrap.cfg has INTERNAL_CI=pass1, so the `jump: break`
# entries whose predicate holds under it end a pass. The next pass starts /init under
# `env -i bwrap --setenv PATH /usr/bin` (rootfs.py), so its first script sees only PATH exported
# (each script then sources bootstrap.cfg and env, whose `export` lines re-export HOME,
# SOURCE_DATE_EPOCH, ... as in every pass). The pins were validated in that environment, so the
# chain starts each of those steps from it, whatever the profile.
CI_CONFIG = {"INTERNAL_CI": "pass1"}
CI_PASS_ENVIRONMENT = {"PATH": "/usr/bin"}


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    index: int  # position among surviving steps, from 0
    line: int
    directive: Literal["build", "improve", "jump", "uninstall"]
    name: str
    occurrence: int  # 1 + earlier surviving directives with the same argument
    era: Era
    bash_generation: int  # 0 in the kaem era, 1 for the first bash, 2+ later
    # script-generator's output_build: a bash build ends /steps/N.sh with `bash /steps/N+1.sh`
    opens_next_script: bool = False
    ci_pass: int = 1  # upstream CI's job (pass1/2/3) that runs this step
    # the exported environment the step starts with when it starts a CI pass; None: the one the
    # previous step left (as within one pass upstream)
    environment_reset: dict[str, str] | None = None
    predicate: str | None = None
    predicate_vars: list[str] = Field(default_factory=list)

    @property
    def pass_no(self) -> int | None:
        return self.occurrence if self.directive == "build" else None

    @property
    def attr_name(self) -> str:
        """Stable flake attribute and file name: ``<pkg>-pass<N>``, others by position."""
        if self.directive == "build":
            return f"{self.name}-pass{self.occurrence}"
        if self.directive == "uninstall":
            return f"uninstall-{self.occurrence_of_kind}"
        return f"{self.directive}-{self.name}-{self.occurrence}"

    occurrence_of_kind: int = 0  # uninstall entries: 1-based among uninstalls


class Evaluated(BaseModel):
    """Every manifest entry with the outcome of its predicate (for reports)."""

    model_config = ConfigDict(frozen=True)

    entry: Entry
    survives: bool
    predicate_result: str | None  # the value script-generator computed, if any


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile: str
    steps: list[PlanStep]
    evaluated: list[Evaluated]
    final_config: list[tuple[str, str]]  # bootstrap.cfg as script-generator writes it back

    def by_attr(self) -> dict[str, PlanStep]:
        return {s.attr_name: s for s in self.steps}


def resolve(manifest: Manifest, profile: Profile) -> Plan:
    variables = _Variables(profile.variables)
    steps: list[PlanStep] = []
    evaluated: list[Evaluated] = []
    seen: dict[str, int] = {}
    uninstalls = 0
    bash_generation = 0
    ci_pass = 1
    reset = False
    for entry in manifest.entries:
        result = evaluate(entry.predicate, variables) if entry.predicate is not None else None
        survives = holds(entry.predicate, variables)
        if entry.kind == "define":
            if survives:
                assert entry.define_name is not None
                if entry.define_expr is not None:
                    value = evaluate(entry.define_expr, variables)
                else:
                    value = entry.define_constant or ""
                variables.define(entry.define_name, value)
            evaluated.append(Evaluated(entry=entry, survives=survives, predicate_result=result))
            continue
        evaluated.append(Evaluated(entry=entry, survives=survives, predicate_result=result))
        ends_ci_pass = (
            entry.kind == "jump"
            and entry.arg == "break"
            and holds(entry.predicate, _WithCi(variables))
        )
        if not survives:
            if ends_ci_pass:
                ci_pass, reset = ci_pass + 1, True
            continue
        seen[entry.arg] = seen.get(entry.arg, 0) + 1
        if entry.kind == "uninstall":
            uninstalls += 1
        era: Era = "kaem" if bash_generation == 0 else "bash"
        opens_next = entry.kind == "build" and entry.arg.startswith("bash-")
        steps.append(
            PlanStep(
                index=len(steps),
                line=entry.line,
                directive=entry.kind,
                name=entry.arg,
                occurrence=seen[entry.arg],
                era=era,
                bash_generation=bash_generation,
                opens_next_script=opens_next,
                ci_pass=ci_pass,
                environment_reset=dict(CI_PASS_ENVIRONMENT) if reset else None,
                predicate=entry.predicate_text,
                predicate_vars=variables_of(entry.predicate),
                occurrence_of_kind=uninstalls if entry.kind == "uninstall" else 0,
            )
        )
        reset = False
        if ends_ci_pass:
            ci_pass, reset = ci_pass + 1, True
        if opens_next:
            bash_generation += 1
    return Plan(
        profile=profile.name,
        steps=steps,
        evaluated=evaluated,
        final_config=variables.items(),
    )


class _WithCi:
    """The variables as upstream CI's pass1 sees them (CI_CONFIG over the profile's)."""

    def __init__(self, variables: _Variables) -> None:
        self._variables = variables

    def get(self, name: str, default: str = "") -> str:
        return CI_CONFIG.get(name, self._variables.get(name, default))


class _Variables:
    """script-generator's variable list, quirks included.

    ``get_var`` returns the first match. ``define`` updates an existing variable but its search
    starts at the *second* list element, so redefining the first variable appends a shadowed
    duplicate (visible in the bootstrap.cfg written back, invisible to lookups).
    """

    def __init__(self, initial: list[tuple[str, str]]) -> None:
        self._items: list[list[str]] = [[n, v] for n, v in initial]

    def get(self, name: str, default: str = "") -> str:
        for n, v in self._items:
            if n == name:
                return v
        return default

    def define(self, name: str, value: str) -> None:
        if not self._items:
            # C special-cases the empty list and then appends once more
            self._items = [[name, value], [name, value]]
            return
        for item in self._items[1:]:
            if item[0] == name:
                item[1] = value
                return
        self._items.append([name, value])

    def items(self) -> list[tuple[str, str]]:
        return [(n, v) for n, v in self._items]
