"""orchestrator/build/setuid.py: which builds need Nix's filter-syscalls = false, and what `build` does
about it. The real CLI path (the option passed, the step built with its setuid bits) runs in
tests/test_runner_sandbox.py; here the decision itself, against the real `nix show-config`."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from orchestrator.build import setuid
from orchestrator.errors import OrchestratorError

STEPS = ["util-linux-2.19.1-pass1"]


def drv(name: str, env: dict[str, str]):
    return SimpleNamespace(name=name, env=env)


def test_marked_derivations_are_found():
    ds = [
        drv("lb-b", {"lbStep": "b", "lbNeedsSetuid": "1"}),
        drv("lb-a", {"lbStep": "a", "lbNeedsSetuid": "1"}),
        drv("lb-c", {"lbStep": "c"}),
    ]
    assert setuid.setuid_steps(ds) == ["a", "b"]


@pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix")
def test_real_nix_settings_are_read():
    settings = setuid.current_settings()
    assert isinstance(settings[setuid.SETTING], bool)
    assert isinstance(settings["trusted-users"], list)


def test_nothing_to_do_without_setuid_steps():
    assert setuid.options_for([], [], {setuid.SETTING: True}) == ([], None)


def test_already_off_needs_nothing():
    assert setuid.options_for(STEPS, [], {setuid.SETTING: False}) == ([], None)
    assert setuid.options_for(STEPS, [["filter-syscalls", "false"]], {}) == ([], None)


def test_explicitly_on_is_refused_naming_the_steps():
    with pytest.raises(OrchestratorError) as e:
        setuid.options_for(STEPS, [["filter-syscalls", "true"]], {})
    assert STEPS[0] in e.value.message and "nix.conf" in (e.value.hint or "")


def test_passed_when_the_user_may(monkeypatch):
    monkeypatch.setattr(setuid, "may_pass_settings", lambda trusted: True)
    more, note = setuid.options_for(STEPS, [], {setuid.SETTING: True, "trusted-users": []})
    assert more == [["filter-syscalls", "false"]]
    assert note and STEPS[0] in note


def test_refused_before_building_when_the_user_may_not(monkeypatch):
    """Stand-in: the test runs as root, who always may; the untrusted case is forced here."""
    monkeypatch.setattr(setuid, "may_pass_settings", lambda trusted: False)
    with pytest.raises(OrchestratorError) as e:
        setuid.options_for(STEPS, [], {setuid.SETTING: True, "trusted-users": []})
    assert "filter-syscalls = true" in e.value.message
    assert STEPS[0] in e.value.message
    hint = e.value.hint or ""
    assert "filter-syscalls = false" in hint and "Hydra" in hint and "remote builders" in hint


def test_root_may_pass_settings():
    import os

    if os.geteuid() != 0:
        pytest.skip("not root")
    assert setuid.may_pass_settings([])
