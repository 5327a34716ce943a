"""The bridge in the flake, evaluated by real Nix 2.8: every member's derivation, the outputs the
issue names (packages.x86_64-linux.bridge with its members as attributes, bridge-<step>,
hydraJobs.bridge.*), still without nixpkgs; `plan --bridge`; and the audit of .#bridge.

Evaluation only: building the bridge needs the whole chain, whose distfiles past simple-patch-1.0
are not available offline (the recipes are built for real on a stand-in in
tests/test_bridge_standin.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.bridge import members as bridge
from tests.conftest import REPO, pinned_source_or_skip, run_nix
from tests.test_audit import SEED_DIR, _real, _seeds, run_audit

MEMBERS = [m.name for m in bridge.load().members]
STEPS = [s.name for s in bridge.load().steps]


@pytest.fixture(scope="module")
def pinned(nix: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real flake, with nixpkgs replaced by a flake whose outputs throw: any evaluation that
    forces nixpkgs fails. Its derivations need the pinned live-bootstrap input's code
    (stage0-posix, M2libc), which a data-only snapshot does not have: skip without it."""
    pinned_source_or_skip()  # listing names would not tell: Nix fetches inputs lazily
    poison = tmp_path_factory.mktemp("no-nixpkgs")
    (poison / "flake.nix").write_text('{ outputs = _: throw "nixpkgs was forced"; }\n')
    return poison


def flake_eval(attr: str, poison: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_nix(
        "eval",
        "--json",
        f"{REPO}#{attr}",
        "--override-input",
        "nixpkgs",
        f"path:{poison}",
        "--no-write-lock-file",
        *extra,
    )


def test_every_member_evaluates_without_nixpkgs(pinned: Path) -> None:
    # nixpkgs is locked but not in the store and there is no network: forcing it would fail
    expr = (
        "b: builtins.listToAttrs (map (n: { name = n; value = b.${n}.drvPath; }) "
        f"{json.dumps(MEMBERS).replace(',', ' ')})"
    )
    drvs = json.loads(flake_eval("packages.x86_64-linux.bridge", pinned, "--apply", expr).stdout)
    assert sorted(drvs) == sorted(MEMBERS)
    for name, drv in drvs.items():
        assert Path(drv).is_file() and drv.endswith(".drv"), name
    # the set itself, each step as bridge-<step>, and a member as an installable attribute path
    assert flake_eval("bridge.drvPath", pinned).stdout.strip('"\n').endswith("-bridge-set.drv")
    assert json.loads(flake_eval("bridge.glibc.drvPath", pinned).stdout) == drvs["glibc"]
    names = json.loads(
        flake_eval("packages.x86_64-linux", pinned, "--apply", "builtins.attrNames").stdout
    )
    assert {f"bridge-{s}" for s in STEPS} <= set(names) and "live-bootstrap" in names
    # i686-linux has no bridge (its glibc and compilers target x86_64)
    names686 = json.loads(
        flake_eval("packages.i686-linux", pinned, "--apply", "builtins.attrNames").stdout
    )
    assert not [n for n in names686 if n.startswith("bridge")]


def test_members_are_built_by_the_chains_runner(pinned: Path) -> None:
    drv = json.loads(flake_eval("bridge.gcc.drvPath", pinned).stdout)
    shown = json.loads(run_nix("show-derivation", drv).stdout)
    (d,) = shown.values()
    assert d["builder"].endswith("-lb-ns-run/bin/ns-run") and d["system"] == "i686-linux"
    spec = d["env"]["spec"]
    # over the flattened final system, its earlier members bound at their store paths
    assert "-live-bootstrap/tree " in spec
    for dep in ("binutils", "glibc"):
        assert f"-bridge-{dep}-" in spec
    assert "--with-native-system-header-dir" not in spec  # the recipe is a file, not Nix text
    assert "gcc.sh /tmp/.runner/step.sh" in spec
    assert set(d["outputs"]) == {"out", "layer"}


def test_hydra_jobs(pinned: Path) -> None:
    jobs = json.loads(
        flake_eval("hydraJobs.bridge", pinned, "--apply", "builtins.attrNames").stdout
    )
    assert set(MEMBERS) | {"set", "steps", "tests"} == set(jobs)
    tests = json.loads(
        flake_eval("hydraJobs.bridge.tests", pinned, "--apply", "builtins.attrNames").stdout
    )
    assert sorted(tests) == sorted(MEMBERS)
    # a member's test is a plain derivation whose builder is the member bash
    t = json.loads(flake_eval("hydraJobs.bridge.tests.gcc.builder", pinned).stdout)
    assert t.endswith("-bridge-bash-5.2.15/bin/bash")


def test_plan_lists_the_bridge_after_the_chain() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "orchestrator", "plan", "--bridge", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(p.stdout)
    chain = [r for r in rows if r["directive"] != "bridge"]
    tail = [r for r in rows if r["directive"] == "bridge"]
    assert rows == chain + tail and [r["attr"] for r in tail] == [f"bridge-{s}" for s in STEPS]
    assert [r["index"] for r in rows] == list(range(len(rows)))


def test_audit_of_the_bridge_lists_exactly_the_two_seeds(capsys) -> None:
    """The set's closure (chain + bridge): its binary inputs are the x86 hex0 seed and
    kaem-optional-seed (813 bytes), nothing else binary."""
    tree = _real("bridge")
    rc, report = run_audit(capsys, "bridge")
    expected = sorted(
        (f"{SEED_DIR}/{n}", (tree / SEED_DIR / n).stat().st_size)
        for n in ("hex0-seed", "kaem-optional-seed")
    )
    assert _seeds(report) == expected and sum(s for _, s in expected) == 813
    assert rc == 0 and report["unexpected"] == 0
    assert report["seed_bytes"] == 813
    used = {u for f in report["findings"] for u in f["used_by"]}
    assert any(u.startswith("bridge-glibc-") for u in used), "the bridge is in the closure"
    sources = {f["file"] for f in report["findings"] if f["kind"] == "source"}
    assert {"glibc-2.42.tar.xz", "linux-6.5.6.tar.xz", "patchelf-0.18.0.tar.gz"} <= sources
    scripts = {
        f["store_path"].split("-", 1)[1] for f in report["findings"] if f["kind"] == "script"
    }
    assert {"glibc.sh", "check-store-only.sh", "run-step.sh"} <= scripts


@pytest.mark.parametrize("target", ["bridge", "bridge.glibc"])
def test_build_offline_reports_missing_distfiles_like_the_chain(target: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "orchestrator", "build", target, "--offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if "distfile(s) are not in the Nix store" not in p.stderr:
        pytest.skip(
            f"the distfiles are in this store or the flake cannot evaluate: {p.stderr[-500:]}"
        )
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert (
        "glibc-2.42.tar.xz  sha256 d1775e32e4628e64ef930f435b67bb63af7599acb6be2b335b9f19f16509f17f"
        in p.stderr
    )
    assert "distfiles seed" in p.stderr and "nothing was built" in p.stderr
