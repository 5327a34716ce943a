"""The gates over steps/stage0/: each fails on a planted drift, in Python and in Nix.

``steps/stage0/meta.json`` records what ``steps/stage0/<arch>.json`` were generated from (the
stage0-posix commit, the sha256 of every file the translation read) and the files' own sha256.

- ``generate`` over a data-only snapshot (no stage0-posix scripts, so it cannot regenerate them)
  keeps the committed files only when they, the record and the tree agree;
- ``generate`` over a tree with the scripts regenerates them, so a hand edit is drift;
- ``checks.<system>.steps-fresh`` (nix/freshness.nix) checks the record against the flake's real
  input in pure evaluation: over a synthetic input here (runs everywhere), and over the real
  pinned input when the store has it (or LIVE_BOOTSTRAP_CHECKOUT can provide it).

Every drift test has its positive control: the same gate passes on the unmodified data.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.stage0.record import Stage0Drift, Stage0Record
from orchestrator.upstream.locate import read_lock
from tests.conftest import REPO, run_nix
from tests.test_bump import copy_repo, tree_digest

X86 = "steps/stage0/x86.json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    """A copy of the committed steps/ (the gate reads its record and files from here)."""
    return Path(shutil.copytree(REPO / "steps", tmp_path / "steps"))


def generate(capsys, tree: Path, steps: Path, *extra: str) -> tuple[int, str]:
    rc = main(["generate", *extra, "--live-bootstrap", str(tree), "--output", str(steps)])
    return rc, capsys.readouterr().err


def edit_record(steps: Path, **changes) -> None:
    path = steps / "stage0" / "meta.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


# -- generate over the data-only snapshot ----------------------------------------------------------
def test_data_only_snapshot_keeps_checked_files(pinned_fixture: Path, steps: Path, capsys) -> None:
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 0, err
    assert "kept 2 committed file(s)" in err and "steps/ is up to date" in err
    record = Stage0Record.model_validate_json((steps / "stage0/meta.json").read_text())
    gitlink = next(
        line.split()[2]
        for line in (pinned_fixture / "ls-tree.txt").read_text().splitlines()
        if line.endswith("\tseed/stage0-posix")
    )
    assert record.stage0_posix_commit == gitlink
    assert record.files["x86.json"] == sha((steps / "stage0/x86.json").read_bytes())
    # the snapshot carries the answers lists: their recorded hashes are the real files'
    answers = (pinned_fixture / "stage0-posix/x86.answers").read_bytes()
    assert record.inputs["seed/stage0-posix/x86.answers"] == sha(answers)
    assert "seed/stage0-posix/kaem.x86" in record.inputs


def test_replaced_file_fails_and_writes_nothing(pinned_fixture: Path, steps: Path, capsys) -> None:
    planted = b'{"x":1}\n'
    (steps / "stage0/x86.json").write_bytes(planted)
    before = tree_digest(steps)
    for mode in (["--check"], []):
        rc, err = generate(capsys, pinned_fixture, steps, *mode)
        assert rc == 1, err
        assert f"{X86}: sha256 {sha(planted)}" in err and "changed after generation" in err
        assert "up to date" not in err
    assert tree_digest(steps) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {"x86.json": "0" * 64}}, f"{X86}: sha256 "),
        (
            {"inputs": {"seed/stage0-posix/x86.answers": "1" * 64}},
            "seed/stage0-posix/x86.answers: sha256 ",
        ),
        ({"stage0_posix_commit": "2" * 40}, f"steps/stage0 was generated from {'2' * 40}"),
        ({"files": {"riscv64.json": "3" * 64}}, "steps/stage0/riscv64.json: recorded, but missing"),
    ],
)
def test_changed_record_fails(
    pinned_fixture: Path, steps: Path, capsys, change: dict, message: str
) -> None:
    edit_record(steps, **change)
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 1 and message in err, err


def test_unrecorded_or_missing_record_fails(pinned_fixture: Path, steps: Path, capsys) -> None:
    (steps / "stage0/riscv64.json").write_text("{}\n")
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 1 and "steps/stage0/riscv64.json: not in the record" in err, err
    (steps / "stage0/riscv64.json").unlink()
    (steps / "stage0/meta.json").unlink()
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 1 and "no record of what steps/stage0 was generated from" in err, err


def test_malformed_record_is_a_located_error(pinned_fixture: Path, steps: Path, capsys) -> None:
    edit_record(steps, files={"../../escape.json": "4" * 64})
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 2 and "meta.json" in err and "not a generated file name" in err, err
    (steps / "stage0/meta.json").write_text("{not json")
    rc, err = generate(capsys, pinned_fixture, steps, "--check")
    assert rc == 2 and "meta.json" in err and "not a stage0 record" in err, err


def test_moved_input_tree_fails(pinned_fixture: Path, steps: Path, tmp_path: Path, capsys) -> None:
    moved = Path(shutil.copytree(pinned_fixture, tmp_path / "moved"))
    listing = moved / "ls-tree.txt"
    lines = listing.read_text().splitlines(keepends=True)
    (i,) = [n for n, line in enumerate(lines) if line.endswith("\tseed/stage0-posix\n")]
    old = lines[i].split()[2]
    lines[i] = lines[i].replace(old, "5" * 40)
    listing.write_text("".join(lines))
    rc, err = generate(capsys, moved, steps, "--check")
    assert rc == 1 and f"this tree has stage0-posix {'5' * 40}" in err, err

    listing.write_text(listing.read_text().replace("5" * 40, old))
    assert generate(capsys, moved, steps, "--check")[0] == 0  # back as it was: passes
    answers = moved / "stage0-posix/x86.answers"
    answers.write_text(answers.read_text() + "0" * 64 + "  x86/bin/extra\n")
    rc, err = generate(capsys, moved, steps, "--check")
    assert rc == 1 and "seed/stage0-posix/x86.answers: sha256" in err, err


def test_a_tree_that_cannot_name_its_stage0_posix(
    pinned_fixture: Path, steps: Path, tmp_path: Path, capsys
) -> None:
    tree = Path(shutil.copytree(pinned_fixture, tmp_path / "unnamed"))
    listing = tree / "ls-tree.txt"
    listing.write_text(
        "".join(
            line
            for line in listing.read_text().splitlines(keepends=True)
            if not line.endswith("\tseed/stage0-posix\n")
        )
    )
    (tree / "stage0-posix/COMMIT").unlink()
    # the revision the record was made at pins the recorded submodule: kept (its hashes checked)
    assert generate(capsys, tree, steps, "--check")[0] == 0
    # another revision that cannot say which stage0-posix it has: refused
    (tree / "COMMIT").write_text("a" * 40 + "\n")
    rc, err = generate(capsys, tree, steps)
    assert rc == 1 and "this tree does not name its stage0-posix commit" in err, err


def test_bump_over_the_committed_snapshot_keeps_stage0(steps: Path, capsys) -> None:
    """Read-only and maintainer commands read steps/upstream.json, which lists no gitlink."""
    from orchestrator.generate.write import render_all
    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.locate import committed_tree

    tree = committed_tree(steps)
    files, kept = render_all(tree, load_chain(tree), steps)
    assert kept == ["stage0/amd64.json", "stage0/x86.json"]
    assert files["stage0/meta.json"] == (steps / "stage0/meta.json").read_text()
    (steps / "stage0/x86.json").write_text('{"x":1}\n')
    with pytest.raises(Stage0Drift, match="steps/stage0/x86.json: sha256"):
        render_all(tree, load_chain(tree), steps)


# -- generate over the real input (the scripts are there: it regenerates) --------------------------
def test_real_input_regenerates_what_was_edited(pinned_source: Path, steps: Path, capsys) -> None:
    rev = read_lock(REPO).rev
    assert rev
    rc, err = generate(capsys, pinned_source, steps, "--check", "--commit", rev)
    assert rc == 0, err
    committed = (steps / "stage0/x86.json").read_text()
    (steps / "stage0/x86.json").write_text('{"x":1}\n')
    rc, err = generate(capsys, pinned_source, steps, "--check", "--commit", rev)
    assert rc == 1 and "change steps/stage0/x86.json" in err, err
    edit_record(steps, files={"amd64.json": "6" * 64})
    rc, err = generate(capsys, pinned_source, steps, "--check", "--commit", rev)
    assert rc == 1 and "change steps/stage0/meta.json" in err, err
    assert generate(capsys, pinned_source, steps, "--commit", rev)[0] == 0
    assert (steps / "stage0/x86.json").read_text() == committed
    assert (steps / "stage0/meta.json").read_text() == (REPO / "steps/stage0/meta.json").read_text()


# -- nix/freshness.nix over a synthetic input (pure evaluation, real Nix) --------------------------
def synthetic(root: Path) -> tuple[Path, Path]:
    """An input with two stage0-posix files and steps/ whose record matches it."""
    lb = root / "lb"
    files = {"seed/stage0-posix/kaem.x86": "./a b\n", "seed/stage0-posix/x86.answers": "c  d\n"}
    for rel, text in files.items():
        (lb / rel).parent.mkdir(parents=True, exist_ok=True)
        (lb / rel).write_text(text)
    steps = root / "steps"
    (steps / "stage0").mkdir(parents=True)
    (steps / "stage0/x86.json").write_text('{"steps": []}\n')
    record = Stage0Record(
        live_bootstrap=None,
        stage0_posix_commit="7" * 40,
        inputs={rel: sha(text.encode()) for rel, text in files.items()},
        files={"x86.json": sha(b'{"steps": []}\n')},
    )
    (steps / "stage0/meta.json").write_text(record.to_json())
    return lb, steps


def fresh(lb: Path, steps: Path):
    expr = (
        f"(import {REPO}/nix/freshness.nix {{ lib = import {REPO}/nix/lib.nix; "
        f'live-bootstrap = {lb}; steps = {steps}; meta = {{ commit = "c"; inputs = {{ }}; }}; }})'
        ".drvPath"
    )
    return run_nix("eval", "--raw", "--impure", "--expr", expr, check=False)


def test_nix_gate_over_a_synthetic_input(tmp_path: Path, nix: str) -> None:
    lb, steps = synthetic(tmp_path)
    ok = fresh(lb, steps)
    assert ok.returncode == 0 and ok.stdout.endswith("-steps-fresh.drv"), ok.stderr

    (steps / "stage0/x86.json").write_text('{"x":1}\n')
    proc = fresh(lb, steps)
    assert proc.returncode != 0
    assert "steps/stage0/x86.json does not have the sha256 steps/stage0/meta.json records" in (
        proc.stderr
    )
    (steps / "stage0/x86.json").write_text('{"steps": []}\n')
    assert fresh(lb, steps).returncode == 0

    (steps / "stage0/amd64.json").write_text("{}\n")
    proc = fresh(lb, steps)
    assert proc.returncode != 0 and "steps/stage0/amd64.json is not in" in proc.stderr
    (steps / "stage0/amd64.json").unlink()

    record = json.loads((steps / "stage0/meta.json").read_text())
    record["files"]["x86.json"] = "8" * 64
    (steps / "stage0/meta.json").write_text(json.dumps(record))
    proc = fresh(lb, steps)
    assert proc.returncode != 0 and "steps/stage0/x86.json does not have" in proc.stderr


def test_nix_gate_over_a_changed_synthetic_input(tmp_path: Path, nix: str) -> None:
    lb, steps = synthetic(tmp_path)
    (lb / "seed/stage0-posix/kaem.x86").write_text("./a b c\n")
    proc = fresh(lb, steps)
    assert proc.returncode != 0
    assert "stage0-posix files differ in the live-bootstrap input: seed/stage0-posix/kaem.x86" in (
        proc.stderr
    )
    (lb / "seed/stage0-posix/kaem.x86").unlink()
    proc = fresh(lb, steps)
    assert proc.returncode != 0 and "seed/stage0-posix/kaem.x86" in proc.stderr
    (steps / "stage0/meta.json").unlink()
    proc = fresh(lb, steps)
    assert proc.returncode != 0 and "steps/stage0/meta.json is missing" in proc.stderr


# -- the flake's steps-fresh over the real pinned input --------------------------------------------
def flake_check(flake: Path, *extra: str, build: bool = False):
    attr = f"path:{flake}#checks.x86_64-linux.steps-fresh"
    if build:
        args = ["--option", "sandbox", "true", "build", "--no-link", "--json", attr]
    else:
        args = ["eval", "--raw", f"{attr}.drvPath"]
    return run_nix(*args, "--no-write-lock-file", *extra, check=False)


def test_flake_steps_fresh_over_the_real_input(
    pinned_source: Path, tmp_path: Path, nix: str
) -> None:
    flake = copy_repo(tmp_path / "repo")
    ok = flake_check(flake, build=True)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert Path(json.loads(ok.stdout)[0]["outputs"]["out"]).exists()

    x86 = flake / "steps/stage0/x86.json"
    committed = x86.read_text()
    x86.write_text('{"x":1}\n')
    proc = flake_check(flake)
    assert proc.returncode != 0
    assert "steps/stage0/x86.json does not have the sha256" in proc.stderr, proc.stderr[-2000:]
    x86.write_text(committed)

    edit_record(flake / "steps", inputs={"seed/stage0-posix/kaem.x86": "9" * 64})
    proc = flake_check(flake)
    assert proc.returncode != 0
    assert "stage0-posix files differ in the live-bootstrap input: seed/stage0-posix/kaem.x86" in (
        proc.stderr
    )
    shutil.copy2(REPO / "steps/stage0/meta.json", flake / "steps/stage0/meta.json")
    assert flake_check(flake).returncode == 0

    # the input moved: one stage0-posix script differs from what steps/stage0 was generated from
    moved = Path(shutil.copytree(pinned_source, tmp_path / "lb", symlinks=True))
    script = moved / "seed/stage0-posix/x86/kaem.run"
    script.chmod(0o644)
    script.write_text(script.read_text() + "# moved\n")
    proc = flake_check(flake, "--override-input", "live-bootstrap", f"path:{moved}")
    assert proc.returncode != 0
    assert "seed/stage0-posix/x86/kaem.run" in proc.stderr, proc.stderr[-2000:]
