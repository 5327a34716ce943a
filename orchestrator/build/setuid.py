"""Steps that set setuid/setgid bits, and the Nix setting they need (``filter-syscalls``).

Some upstream install rules chmod programs setuid (util-linux's mount and umount, shadow, doas),
and live-bootstrap's pinned package tarballs record those modes, so the bits must be set inside
the step while it packs its tarball (the store never keeps them: Nix resets every output file to
0444/0555). Nix's default seccomp filter refuses such a chmod with EPERM; only
``filter-syscalls = false`` allows it. Which steps need it is data
(``steps/overrides/runner/steps.json``); the runner marks their derivations with
``lbNeedsSetuid = "1"``, which is what this module reads from the evaluated closure.

``orchestrator build`` passes ``--option filter-syscalls false`` when the user may (root, or a
trusted user of the daemon) and says so; otherwise it stops before building, with the steps and
how to set it.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable, Sequence
from typing import Any

from orchestrator import nixcli
from orchestrator.errors import OrchestratorError

SETTING = "filter-syscalls"
MARK = "lbNeedsSetuid"  # nix/runner.nix: set on the derivations of steps that need the bits
STEP_ENV = "lbStep"

HOW_TO_SET = (
    "set `filter-syscalls = false` in the nix.conf of every machine that builds these steps "
    "(/etc/nix/nix.conf; for Hydra and remote builders, on each build machine: a setting passed "
    "on the command line does not reach them), or run as root or a trusted user, which may pass "
    "--option filter-syscalls false"
)


def setuid_steps(derivations: Iterable[Any]) -> list[str]:
    """Step attributes of the derivations marked as needing setuid bits, sorted."""
    return sorted(d.env.get(STEP_ENV, d.name) for d in derivations if d.env.get(MARK) == "1")


def _value(entry: Any) -> Any:
    # `nix show-config --json` gives {name: {"value": ...}} (Nix 2.8 and later)
    return entry.get("value") if isinstance(entry, dict) else entry


def current_settings() -> dict[str, Any]:
    data = nixcli.nix_json(["show-config", "--json"])
    return {k: _value(v) for k, v in data.items()}


def may_pass_settings(trusted_users: Sequence[str]) -> bool:
    """Root, or a user the daemon trusts (by name, by group @g, or `*`)."""
    if os.geteuid() == 0:
        return True
    user = pwd.getpwuid(os.geteuid()).pw_name
    groups = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    groups.add(grp.getgrgid(os.getegid()).gr_name)
    return any(t in ("*", user) or (t.startswith("@") and t[1:] in groups) for t in trusted_users)


def _false(value: Any) -> bool:
    return value is False or str(value).lower() == "false"


def options_for(
    steps: list[str], options: Sequence[Sequence[str]], settings: dict[str, Any]
) -> tuple[list[list[str]], str | None]:
    """The Nix options to add for ``steps`` (those needing setuid bits) and a note for the user.

    Nothing to add when no step needs the bits, the user passed the option, or the setting is
    already off; ``--option filter-syscalls false`` when the user may pass it; otherwise an
    error before anything is built."""
    if not steps:
        return [], None
    for name, value in options:
        if name == SETTING:
            if _false(value):
                return [], None
            raise OrchestratorError(
                f"--option {SETTING} {value}: the steps {', '.join(steps)} set setuid bits, "
                "which that setting refuses",
                hint=HOW_TO_SET,
            )
    if _false(settings.get(SETTING, True)):
        return [], None
    if may_pass_settings(settings.get("trusted-users") or []):
        return (
            [[SETTING, "false"]],
            (
                f"passing --option {SETTING} false: {', '.join(steps)} set setuid bits that "
                "live-bootstrap's pinned package tarballs record, and Nix's seccomp filter refuses "
                "them otherwise"
            ),
        )
    raise OrchestratorError(
        f"{len(steps)} step(s) of this build set setuid bits that live-bootstrap's pinned package "
        f"tarballs record ({', '.join(steps)}), and Nix refuses them while "
        f"`{SETTING} = true` (the default); you may not change that setting for this build",
        hint=HOW_TO_SET,
    )
