"""Diverse double-compiling at stage0 (nix/ddc.nix, docs/ddc.md), built for real.

The x86 chain's commands run again with the AMD64 chain's programs (built from the AMD64 seed)
and the files are compared with the x86 chain's own. The data (nix/ddc.json) is checked against
the committed steps/stage0/*.json without Nix; everything else builds in the sandbox and needs
the pinned live-bootstrap source (conftest's pinned_source: from the store, or
LIVE_BOOTSTRAP_CHECKOUT; else skipped saying why).

- the flake check `ddc-stage0` builds and says identical, and the tools' hashes are the x86
  chain's (hashed again here, and against stage0-posix's own x86.answers);
- nothing of the x86 chain enters the rebuilt programs (every derivation of their closure is an
  x86_64-linux one: the AMD64 seed's chain);
- a planted fault (one command with another --base-address) makes the check fail naming the
  file, and the verdict says identical: false;
- the one program left out, hex2-0, is run anyway: its six programs differ from the x86
  chain's only in 32-bit words that differ by the two hand-written base addresses;
- data that names no step, or leaves a program out, stops evaluation naming nix/ddc.json.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.verify.ddc import DdcVerdict, load_verdict

from .conftest import NIX_FLAGS, REPO

DATA = json.loads((REPO / "nix" / "ddc.json").read_text())
REQUIRED_TOOLS = ("M2-Planet", "M1", "hex2", "blood-elf", "kaem")
X86_BASE = 0x08048000  # x86/hex2_x86.hex1: mov_edi, %0x8048000 "Our starting IP"
AMD64_BASE = 0x00600000  # AMD64/hex2_AMD64.hex1: mov_r13, %0x00600000
HEX2_0_LINKED = {
    "x86/artifact/catm",
    "x86/artifact/M0",
    "x86/artifact/cc_x86",
    "x86/artifact/blood-elf-0",
    "x86/artifact/M1-0",
    "x86/artifact/hex2-1",
}

# nix/ddc.nix with the pinned source, optionally other data and one planted fault: a step's
# literal argument replaced (test-only; the flake builds the same derivations without them).
EXPR = """
{ lb, repo, data ? "", plant ? "" }:
let
  root = /. + repo;
  steps = root + "/steps";
  stage0 = import (root + "/nix/stage0.nix") { live-bootstrap = builtins.storePath lb; inherit steps; };
  p = builtins.fromJSON plant;
  edit = if plant == "" then (s: s) else map (s:
    if s.id != p.step then s
    else s // { args = map (a: if (a.lit or null) == p.lit then { lit = p.new; } else a) s.args; });
in
import (root + "/nix/ddc.nix") ({ inherit stage0 steps edit; }
  // (if data == "" then { } else { data = builtins.fromJSON data; }))
"""


def _plan(arch: str) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads((REPO / "steps" / "stage0" / f"{arch}.json").read_text())
    return plan


def _nix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix", *NIX_FLAGS, "--option", "sandbox", "true", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def _expr_args(lb: Path, data: dict[str, Any] | None, plant: dict[str, str] | None) -> list[str]:
    args = ["--impure", "--expr", EXPR, "--argstr", "lb", str(lb), "--argstr", "repo", str(REPO)]
    if data is not None:
        args += ["--argstr", "data", json.dumps(data)]
    if plant is not None:
        args += ["--argstr", "plant", json.dumps(plant)]
    return args


def _build_expr(
    lb: Path, attr: str, data: dict[str, Any] | None = None, plant: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _nix("build", "--no-link", "--json", *_expr_args(lb, data, plant), attr)


def _out(proc: subprocess.CompletedProcess[str]) -> Path:
    assert proc.returncode == 0, proc.stderr[-4000:]
    (built,) = json.loads(proc.stdout)
    return Path(built["outputs"]["out"])


def _verdict(out: Path) -> dict[str, Any]:
    verdict: dict[str, Any] = json.loads((out / "ddc.json").read_text())
    return verdict


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the data, against the committed plans (no Nix) ----------------------------------------------
def test_data_pairs_programs_of_the_same_role() -> None:
    target, host = _plan(DATA["target"]), _plan(DATA["host"])
    t_steps = {s["id"]: s for s in target["steps"]}
    h_steps = {s["id"]: s for s in host["steps"]}

    def program(step: dict[str, Any], steps: dict[str, dict[str, Any]]) -> str:
        if step["kind"] == "assemble":  # a PATH directory: the programs it holds, by name
            names = sorted(steps[r["step"]]["name"] for r in step["env"].values() if "step" in r)
            return "dir:" + ",".join(names)
        return str(step["output"]).split("/", 1)[1]  # the path below the architecture directory

    for tid, entry in DATA["tools"].items():
        assert tid in t_steps and entry["host"] in h_steps, tid
        assert program(t_steps[tid], t_steps) == program(h_steps[entry["host"]], h_steps), tid
        assert entry["why"].strip(), tid
    for src, entry in DATA["seeds"].items():
        assert any(s["builder"].get("src") == src for s in target["steps"]), src
        assert entry["host"] in h_steps
    for tid, why in DATA["not_cross"].items():
        assert tid in t_steps and why.strip() and tid not in DATA["tools"], tid
    # every program a target command runs is accounted for
    for s in target["steps"]:
        if s["kind"] == "command":
            b = s["builder"]
            assert (
                b.get("step") in DATA["tools"]
                or b.get("step") in DATA["not_cross"]
                or (b.get("src") in DATA["seeds"])
            ), s["id"]


# -- the real check --------------------------------------------------------------------------------
@pytest.mark.nix
@pytest.mark.checkout
def test_flake_check_is_identical_and_independent(pinned_source: Path) -> None:
    proc = _nix("build", "--no-link", "--json", ".#checks.x86_64-linux.ddc-stage0", ".#stage0")
    assert proc.returncode == 0, proc.stderr[-4000:]
    outs = {Path(b["drvPath"]).name: Path(b["outputs"]["out"]) for b in json.loads(proc.stdout)}
    (check,) = [o for d, o in outs.items() if d.endswith("-ddc-stage0.drv")]
    (x86,) = [o for d, o in outs.items() if d.endswith("-stage0-posix-x86.drv")]
    v = _verdict(check)
    assert v["format"] == 1 and v["target"] == "x86" and v["host"] == "amd64"
    model = load_verdict(check)  # the documented format, checked by its model
    assert model.identical and set(model.tools) == set(_plan("x86")["tools"])
    assert v["identical"] is True and v["differing"] == []
    files = {f["step"]: f for f in v["files"]}
    assert v["compared"] == len(files) == len(v["files"])
    tools = {f["tool"]: f for f in v["files"] if f["tool"] is not None}
    # every program the x86 chain leaves in bin/ is rebuilt and compared
    assert set(tools) == set(_plan("x86")["tools"]) and set(REQUIRED_TOOLS) <= set(tools)
    answers = {
        line.split()[1].rsplit("/", 1)[1]: line.split()[0]
        for line in (pinned_source / "seed" / "stage0-posix" / "x86.answers")
        .read_text()
        .split("\n")
        if line.strip()
    }
    assert set(REQUIRED_TOOLS) <= set(answers)  # x86.answers lists all but wrap
    for name, f in tools.items():
        assert f["identical"] is True, name
        # hashed again here: the x86 chain's .#stage0 program, the rebuilt file, upstream's answers
        assert _sha256(x86 / "bin" / name) == f["target"]["sha256"], name
        assert answers.get(name, f["target"]["sha256"]) == f["target"]["sha256"], name
        assert _sha256(Path(f["rebuilt"]["path"])) == f["target"]["sha256"], name
        assert f["rebuilt"]["path"] != f["target"]["path"]
    # the x86 seeds themselves (813 bytes) come out of AMD64's hex0
    seeds = pinned_source / "seed/stage0-posix/bootstrap-seeds/POSIX/x86"
    assert files["x86/artifact/hex0"]["rebuilt"]["sha256"] == _sha256(seeds / "hex0-seed")
    assert files["x86/artifact/kaem-0"]["rebuilt"]["sha256"] == _sha256(
        seeds / "kaem-optional-seed"
    )
    skipped = {s["id"] for s in v["skipped"]}
    assert skipped >= HEX2_0_LINKED and "x86/artifact/M2" in skipped
    assert not skipped & set(files)

    # independence: the rebuilt M2-Planet's whole derivation closure is x86_64-linux (the AMD64
    # seed's chain): no x86 program, and so not the x86 seed, ran for it
    deriver = subprocess.run(
        ["nix-store", "--query", "--deriver", tools["M2-Planet"]["rebuilt"]["path"]],
        capture_output=True,
        text=True,
    )
    assert deriver.returncode == 0 and deriver.stdout.strip().endswith(".drv"), deriver.stderr
    shown = _nix("show-derivation", "--recursive", deriver.stdout.strip())
    assert shown.returncode == 0, shown.stderr[-2000:]
    closure = json.loads(shown.stdout)
    assert {d["system"] for d in closure.values()} == {"x86_64-linux"}
    sources = {p for d in closure.values() for p in d["inputSrcs"]}
    assert not any(p.endswith("-hex0-seed") and _is_x86_seed(Path(p)) for p in sources)


def _is_x86_seed(directory: Path) -> bool:
    seed = directory / "hex0-seed"
    return seed.is_file() and seed.stat().st_size == 181 and seed.read_bytes()[18] == 3  # EM_386


@pytest.mark.nix
@pytest.mark.checkout
def test_planted_fault_fails_the_check(pinned_source: Path) -> None:
    plant = {"step": "x86/bin/kaem", "lit": "0x8048000", "new": "0x8049000"}
    failed = _build_expr(pinned_source, "check", plant=plant)
    assert failed.returncode != 0
    assert "ddc-verdict: differs: x86/bin/kaem" in failed.stderr, failed.stderr[-3000:]
    v = _verdict(_out(_build_expr(pinned_source, "verdict", plant=plant)))
    assert v["identical"] is False and v["differing"] == ["x86/bin/kaem"]
    (kaem,) = [f for f in v["files"] if f["tool"] == "kaem"]
    assert kaem["identical"] is False
    assert kaem["target"]["sha256"] != kaem["rebuilt"]["sha256"]
    assert _sha256(Path(kaem["rebuilt"]["path"])) == kaem["rebuilt"]["sha256"]
    assert all(f["identical"] for f in v["files"] if f["step"] != "x86/bin/kaem")


@pytest.mark.nix
@pytest.mark.checkout
def test_hex2_0_differs_only_in_its_base_address(pinned_source: Path) -> None:
    data = json.loads(json.dumps(DATA))
    data["not_cross"].pop("x86/artifact/hex2-0")
    data["tools"]["x86/artifact/hex2-0"] = {"host": "AMD64/artifact/hex2-0", "why": "test"}
    v = _verdict(_out(_build_expr(pinned_source, "verdict", data=data)))
    assert set(v["differing"]) == HEX2_0_LINKED
    assert all(f["identical"] for f in v["files"] if f["step"] not in HEX2_0_LINKED)
    for f in v["files"]:
        if f["step"] not in HEX2_0_LINKED:
            continue
        a = Path(f["target"]["path"]).read_bytes()
        b = Path(f["rebuilt"]["path"]).read_bytes()
        assert len(a) == len(b), f["step"]
        unexplained = _differences_beyond_base(a, b, X86_BASE - AMD64_BASE)
        assert unexplained == [], (f["step"], unexplained[:5])


def _differences_beyond_base(a: bytes, b: bytes, delta: int) -> list[int]:
    """Offsets where a and b differ that no little-endian 32-bit word differing by exactly
    `delta` (x86 value minus AMD64 value) covers."""
    covered: set[int] = set()
    left = []
    for o in (i for i in range(len(a)) if a[i] != b[i]):
        if o in covered:
            continue
        for start in range(max(0, o - 3), min(o, len(a) - 4) + 1):
            x = int.from_bytes(a[start : start + 4], "little")
            y = int.from_bytes(b[start : start + 4], "little")
            if x - y == delta:
                covered.update(range(start, start + 4))
                break
        else:
            left.append(o)
    return left


@pytest.mark.nix
@pytest.mark.checkout
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown-host", "nix/ddc.json: host step AMD64/bin/M1-renamed is not a step"),
        ("unknown-target", "nix/ddc.json: target step x86/bin/no-such is not a step"),
        ("missing", "x86/bin/M1, which is neither in tools nor in not_cross"),
    ],
)
def test_bad_data_stops_evaluation(pinned_source: Path, change: str, message: str) -> None:
    data = json.loads(json.dumps(DATA))
    if change == "unknown-host":
        data["tools"]["x86/bin/M1"]["host"] = "AMD64/bin/M1-renamed"
    elif change == "unknown-target":
        data["not_cross"]["x86/bin/no-such"] = "test"
    else:
        del data["tools"]["x86/bin/M1"]
    proc = _nix("eval", "--raw", *_expr_args(pinned_source, data, None), "check.drvPath")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]


# -- ddc.json read back (orchestrator/verify/ddc.py) ------------------------------------------------
def _verdict_text(**change: Any) -> str:
    """A one-file verdict in the format the check writes (the real one is read back above)."""
    a = {"sha256": "a" * 64, "size": 3, "path": "/nix/store/x-M1"}
    b = {"sha256": "a" * 64, "size": 3, "path": "/nix/store/y-ddc-M1"}
    entry = {"step": "x86/bin/M1", "tool": "M1", "target": a, "rebuilt": b, "identical": True}
    verdict = {
        "format": 1,
        "check": "ddc-stage0",
        "target": "x86",
        "host": "amd64",
        "files": [entry],
        "compared": 1,
        "differing": [],
        "identical": True,
        "skipped": [{"id": "x86/artifact/M2", "why": "because"}],
    }
    verdict.update(change)
    return json.dumps(verdict, indent=1)


def test_verdict_reads_back(tmp_path: Path) -> None:
    (tmp_path / "ddc.json").write_text(_verdict_text())
    v = load_verdict(tmp_path)  # the check's output directory
    assert isinstance(v, DdcVerdict) and v.identical and list(v.tools) == ["M1"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_verdict_text()[:200], "ddc.json:11: not JSON"),  # truncated: the line is named
        (_verdict_text(format=2), "format"),
        (_verdict_text(identical=False), "identical=False with 0 files differing"),
        (_verdict_text(compared=2), "compared=2 but 1 files"),
        (_verdict_text(differing=["x86/bin/M1"]), "but the files say []"),
    ],
)
def test_bad_verdict_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "ddc.json"
    path.write_text(text)
    with pytest.raises(OrchestratorError) as err:
        load_verdict(path)
    assert str(path) in str(err.value) and needle in str(err.value), str(err.value)
