"""The environment each step starts with across upstream CI's pass boundaries (model data).

Upstream's CI (.github/workflows/bwrap.yml) runs three jobs split at the `jump: break ( INTERNAL_CI
== pass1 )` lines; each later job starts /init under `env -i bwrap --setenv PATH /usr/bin`. The
expected boundaries are derived here from the manifest text alone (a regex over its lines), not
through the model's parser or predicate evaluator, for both fixture revisions and every profile.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.plan import CI_PASS_ENVIRONMENT
from orchestrator.upstream.tree import SourceTree

BREAK = re.compile(r"^jump: break \( INTERNAL_CI == pass1 \)")


def break_lines(manifest: Path) -> list[int]:
    return [n for n, line in enumerate(manifest.read_text().splitlines(), 1) if BREAK.match(line)]


@pytest.mark.parametrize("profile", ["nix", "bwrap-ci", "qemu"])
@pytest.mark.parametrize("which", ["pinned_fixture", "old_fixture"])
def test_ci_passes_and_resets_follow_the_break_lines(
    which: str, profile: str, request: pytest.FixtureRequest
) -> None:
    root: Path = request.getfixturevalue(which)
    breaks = break_lines(root / "steps/manifest")
    assert len(breaks) == 2  # both revisions: three CI jobs
    steps = [
        s for s in load_chain(SourceTree.open(root), profile).plan.steps if s.directive != "jump"
    ]
    for s in steps:
        assert s.ci_pass == 1 + sum(1 for b in breaks if b < s.line), s.attr_name
    first_after = [min((s for s in steps if s.line > b), key=lambda s: s.line) for b in breaks]
    reset = [s for s in steps if s.environment_reset is not None]
    assert reset == first_after
    assert all(s.environment_reset == {"PATH": "/usr/bin"} for s in reset)


def test_pass_environment_is_what_rootfs_py_sets() -> None:
    """rootfs.py's bwrap call: `env -i` and its `--setenv` pairs (read from upstream's file)."""
    checkout = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not checkout:
        pytest.skip("set LIVE_BOOTSTRAP_CHECKOUT: rootfs.py is not part of the fixtures")
    text = (Path(checkout) / "rootfs.py").read_text()
    call = text[text.index("run('env', '-i', 'bwrap'") :]
    call = call[: call.index("init,")]
    pairs = dict(re.findall(r"'--setenv', '(\w+)', '([^']*)'", call))
    assert pairs == CI_PASS_ENVIRONMENT


@pytest.mark.parametrize("profile", ["nix", "bwrap-ci", "qemu"])
def test_every_profile_plans_offline_from_the_committed_snapshot(
    profile: str, pinned_fixture: Path
) -> None:
    """A fresh clone has only steps/upstream.json: each profile's plan from it equals the one
    from the full upstream tree (before, bwrap-ci and qemu stopped at fiwix's .checksums)."""
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "LIVE_BOOTSTRAP"}

    def plan(*extra: str) -> list[dict[str, object]]:
        p = subprocess.run(
            [sys.executable, "-m", "orchestrator", "plan", "--profile", profile, "--json", *extra],
            capture_output=True,
            text=True,
            cwd=repo,
            env=env,
        )
        assert p.returncode == 0, p.stderr[-2000:]
        return list(json.loads(p.stdout))

    assert plan() == plan("--live-bootstrap", str(pinned_fixture))


# rootfs.py's arguments: upstream CI's (.github/workflows/bwrap.yml) and the chain's own
PROFILE_ARGS: dict[str, dict[str, object]] = {
    "bwrap-ci": {"cores": 4, "build_kernels": True, "internal_ci": "pass1"},
    "nix": {"cores": 1, "build_kernels": False, "internal_ci": None},
}


@pytest.mark.parametrize("profile", sorted(PROFILE_ARGS))
def test_profile_is_what_rootfs_py_writes(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile's bootstrap.cfg equals what upstream's own create_configuration_file writes
    for `rootfs.py --bwrap --external-sources` with the profile's arguments (run from the
    checkout; `requests`, which rootfs.py's imports pull in and this function never uses, is
    an empty stand-in module when it is not installed)."""
    import argparse
    import importlib.util
    import types

    from orchestrator.upstream.profiles import load_profile

    checkout = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not checkout:
        pytest.skip("set LIVE_BOOTSTRAP_CHECKOUT: rootfs.py is not part of the fixtures")
    monkeypatch.syspath_prepend(checkout)
    if importlib.util.find_spec("requests") is None:
        monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))
    spec = importlib.util.spec_from_file_location("lb_rootfs", Path(checkout) / "rootfs.py")
    assert spec is not None and spec.loader is not None
    rootfs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rootfs)
    args = argparse.Namespace(
        arch="x86",
        force_timestamps=False,
        chroot=False,
        bwrap=True,
        update_checksums=False,
        swap=0,
        interactive=False,
        qemu=False,
        bare_metal=False,
        kernel=None,
        repo=None,
        external_sources=True,
        configurator=False,
        mirrors=["file:///mirror"],
        **PROFILE_ARGS[profile],
    )
    (tmp_path / "steps").mkdir()
    monkeypatch.chdir(tmp_path)
    rootfs.create_configuration_file(args)
    written = (tmp_path / "steps/bootstrap.cfg").read_text().splitlines()
    assert [f"{n}={v}" for n, v in load_profile(profile).variables] == written
