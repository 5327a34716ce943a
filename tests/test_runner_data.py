"""The runner's step data (steps/overrides/runner/steps.json): step-specific behaviour as data
beside the steps, each entry with its reason, read by nix/runner.nix (stepBehaviour).

Checks the committed file against the committed steps/ (every named step exists, ranges run
forwards, only known keys, a reason everywhere), that Nix applies it to the real chain's
derivations, and that Nix refuses a stale or malformed entry with a message naming the file and
the entry.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "steps" / "overrides" / "runner" / "steps.json"
ENTRY_KEYS = {"steps", "from", "through", "copyUp", "copyUpTrees", "setuid", "reason"}
needs_nix = pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix")


def chain_order() -> list[str]:
    text = (REPO / "steps" / "default.nix").read_text()
    return re.findall(r"^\s*\./(\S+)\.nix$", text, re.MULTILINE)


def test_every_entry_names_existing_steps_with_a_reason():
    data = json.loads(DATA.read_text())
    assert set(data) <= {"schema_version", "about", "entries"}
    assert data["schema_version"] == 1
    order = chain_order()
    assert len(order) > 100
    for k, e in enumerate(data["entries"]):
        assert set(e) <= ENTRY_KEYS, (k, set(e) - ENTRY_KEYS)
        assert e.get("reason", "").strip(), f"entry {k} has no reason"
        names = e.get("steps", []) + [e[x] for x in ("from", "through") if x in e]
        assert names, f"entry {k} names no step"
        for name in names:
            assert name in order, f"entry {k}: {name} is not in steps/default.nix"
        if "from" in e:
            assert order.index(e["from"]) <= order.index(e["through"])
        for path in e.get("copyUp", []) + e.get("copyUpTrees", []):
            assert path.startswith("/") and ".." not in path.split("/")
        assert any(x in e for x in ("copyUp", "copyUpTrees", "setuid")), f"entry {k} does nothing"


@needs_nix
def test_the_real_chain_gets_the_data():
    """MkChain over the committed steps/ (stand-in runner and layers: no live-bootstrap input
    needed): exactly the named steps get the setuid check, the range gets its copy-up."""
    expr = f"""
      let
        lib = import {REPO}/nix/lib.nix;
        R = import {REPO}/nix/runner.nix {{ inherit lib; }};
        fetchers = import {REPO}/nix/fetchers.nix {{ }};
        loaded = import {REPO}/nix/steps.nix {{ steps = {REPO}/steps; inherit (fetchers) fetchDistfile; }};
        chain = R.mkChain {{
          system = "i686-linux"; runner = "/stand-in"; steps = loaded.chainSteps;
          below = [ {{ tree = "/stand-in"; }} ]; environ = "/stand-in";
          config = loaded.meta.config; envText = ""; inherit (loaded) stepData;
        }};
      in builtins.mapAttrs (n: d: {{
        suid = d.lbNeedsSetuid or "";
        tree = builtins.match ".*copyuptree /usr.*" d.spec != null;
      }}) chain.byName
    """
    p = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    order = chain_order()
    assert sorted(got) == sorted(order)
    setuid = sorted(n for n, v in got.items() if v["suid"] == "1")
    assert setuid == ["opendoas-6.8.2-pass1", "shadow-4.14.3-pass1", "util-linux-2.19.1-pass1"]
    copied = [n for n in order if got[n]["tree"]]
    assert copied == order[: order.index("tar-1.34-pass1") + 1]


BAD = [
    ('{ steps = [ "no-such-step" ]; setuid = true; reason = "r"; }', "names step 'no-such-step'"),
    ('{ steps = [ "a" ]; setuid = true; }', "every entry needs a reason"),
    ('{ steps = [ "a" ]; setuidd = true; reason = "r"; }', "unknown key(s) setuidd"),
    ('{ from = "b"; through = "a"; copyUpTrees = [ "/usr" ]; reason = "r"; }', "comes after"),
    ('{ from = "a"; copyUpTrees = [ "/usr" ]; reason = "r"; }', "'from' and 'through' go together"),
]


@needs_nix
@pytest.mark.parametrize(("entry", "message"), BAD)
def test_nix_refuses_a_bad_entry_naming_file_and_entry(entry, message):
    expr = f"""
      let
        R = import {REPO}/nix/runner.nix {{ lib = import {REPO}/nix/lib.nix; }};
        steps = [ {{ attrName = "a"; }} {{ attrName = "b"; }} ];
      in builtins.deepSeq (R.stepBehaviour {{ inherit steps; data = {{ entries = [ {entry} ]; }}; }}) 1
    """
    p = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "-E", expr], capture_output=True, text=True
    )
    assert p.returncode != 0
    assert "steps/overrides/runner/steps.json: entry 0" in p.stderr
    assert message in p.stderr


@needs_nix
def test_a_range_covers_both_ends():
    expr = f"""
      let
        R = import {REPO}/nix/runner.nix {{ lib = import {REPO}/nix/lib.nix; }};
        steps = map (n: {{ attrName = n; }}) [ "a" "b" "c" "d" ];
        data = {{ entries = [
          {{ from = "b"; through = "c"; copyUpTrees = [ "/usr" ]; reason = "r"; }}
          {{ steps = [ "c" ]; setuid = true; copyUp = [ "/etc/x" ]; reason = "r"; }}
        ]; }};
      in R.stepBehaviour {{ inherit steps data; }}
    """
    p = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got == {
        "b": {"copyUp": [], "copyUpTrees": ["/usr"], "setuid": False},
        "c": {"copyUp": ["/etc/x"], "copyUpTrees": ["/usr"], "setuid": True},
    }
