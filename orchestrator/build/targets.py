"""What `build`, `verify` and `audit` name: the flake to read and its chain's special targets."""

from __future__ import annotations

from orchestrator.upstream.locate import REPO_ROOT

SPECIAL_TARGETS = ("live-bootstrap", "stage0", "bridge")
DEFAULT_TARGET = "live-bootstrap"


def default_flake() -> str:
    """This repository's flake when running from a checkout of it, else the current directory."""
    return str(REPO_ROOT) if (REPO_ROOT / "flake.nix").is_file() else "."
