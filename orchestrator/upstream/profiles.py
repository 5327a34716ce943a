"""Profiles: the ``bootstrap.cfg`` that live-bootstrap's rootfs.py would write for a mode.

Each profile is a plain ``NAME=VALUE`` file under ``profiles/`` (package data), read with the
semantics of script-generator.c's ``load_config``: split at the first ``=``, the value is the rest
of the line. Order matters: it is the order the final ``bootstrap.cfg`` is written back in.

- ``nix``: chroot/bwrap mode for x86 (``rootfs.py --bwrap --external-sources``), the chain our
  derivations build. No kernels, no network step, distfiles provided from the Nix store.
- ``bwrap-ci``: live-bootstrap's own CI first pass (``.github/workflows/bwrap.yml``: ``--bwrap
  --external-sources --build-kernels --cores 4 --internal-ci pass1``).
- ``qemu``: the kernel bootstrap (``--qemu``), for planning and comparison only.
"""

from __future__ import annotations

from importlib import resources

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import OrchestratorError, ParseError

DEFAULT_PROFILE = "nix"


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    variables: list[tuple[str, str]]


def available_profiles() -> list[str]:
    files = resources.files("orchestrator").joinpath("profiles")
    return sorted(p.name[: -len(".cfg")] for p in files.iterdir() if p.name.endswith(".cfg"))


def parse_config(text: str, path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line == "":
            continue
        name, eq, value = line.partition("=")
        if not eq:
            raise ParseError(
                "bootstrap.cfg should have the format var=val on each line", file=path, line=lineno
            )
        out.append((name, value))
    return out


def load_profile(name: str) -> Profile:
    if name not in available_profiles():
        raise OrchestratorError(
            f"unknown profile {name!r}",
            hint="available: " + ", ".join(available_profiles()),
        )
    res = resources.files("orchestrator").joinpath("profiles", f"{name}.cfg")
    return Profile(name=name, variables=parse_config(res.read_text(), f"profiles/{name}.cfg"))
