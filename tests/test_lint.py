"""The project's own strictness: ruff (lint and format) and mypy over the package.

pyproject.toml selects every ruff rule ("ALL") minus the ones it names, each with its reason, and
runs mypy with ``strict = true``. The tools come with the `test` extra; their absence is a setup
error, not a skip.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "orchestrator"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(cmd: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
