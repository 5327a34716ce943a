"""The user's path: one way to name the live-bootstrap source, output that survives a pipe,
errors a program can read, every option documented.

Real runs throughout: the CLI in-process or as a subprocess with stdout a pipe, real Nix in a
fresh chroot store (``store = ROOT`` through ``$NIX_CONFIG``) where the pinned input is absent,
git refused the network (``GIT_ALLOW_PROTOCOL=file``) so the outcome does not depend on whether
this machine is online.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import clidoc
from orchestrator.build.nixlog import BuildLog
from orchestrator.build.progress import Durations, eta
from orchestrator.cli import build_parser, main
from tests.conftest import REPO, pinned_source_or_skip

STORE_DRV = "/nix/store/" + "a" * 32 + "-{}.drv"


def _real_source() -> Path:
    return pinned_source_or_skip()


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nix sees a fresh chroot store without the pinned input, and cannot fetch it."""
    root = tmp_path / "root"
    monkeypatch.setenv("NIX_CONFIG", f"store = {root}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nix's fetcher caches
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")
    monkeypatch.delenv("LIVE_BOOTSTRAP", raising=False)
    return root


# -- 1. one option, everywhere -------------------------------------------------------------------
@pytest.mark.nix
@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "stage0", "--json"],
        ["build", "stage0", "--offline", "--json"],
        ["verify", "--against-live-bootstrap", "--json"],
    ],
    ids=["audit", "build", "verify"],
)
def test_unfetchable_input_is_one_error_naming_the_option(
    nix: str, empty_store: Path, argv: list[str], capsys
) -> None:
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    error = json.loads(cap.out)
    assert error["error"].count("\n") == 0, "one line"
    assert "pinned live-bootstrap input" in error["error"]
    assert "cannot be fetched" in error["error"]
    assert "--live-bootstrap PATH" in error["error"] and "$LIVE_BOOTSTRAP" in error["error"]
    assert error["hint"] and "Offline" in error["hint"]
    assert "is the runner wired" not in cap.err


@pytest.mark.nix
@pytest.mark.checkout
def test_option_and_environment_reach_nix(
    nix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    source = _real_source()  # before the store is switched
    root = tmp_path / "root"
    monkeypatch.setenv("NIX_CONFIG", f"store = {root}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")
    monkeypatch.delenv("LIVE_BOOTSTRAP", raising=False)

    rc = main(["audit", "stage0", "--json", "--live-bootstrap", str(source)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    report = json.loads(cap.out)
    assert report["seed_bytes"] == 181, "the x86 hex0 seed, read from the chroot store"

    monkeypatch.setenv("LIVE_BOOTSTRAP", str(source))
    rc = main(["audit", "stage0", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert json.loads(cap.out)["seed_bytes"] == 181


@pytest.mark.nix
def test_audit_reads_sources_in_a_chroot_store(
    nix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Store sources that exist only in a chroot store are read there (ROOT/nix/store/...)."""
    from tests.test_audit import audit_flake, lb_tree

    lb = lb_tree(tmp_path / "lb")  # fresh random seeds: these store paths are new everywhere
    flake = audit_flake(tmp_path / "flake", lb)
    monkeypatch.setenv("NIX_CONFIG", f"store = {tmp_path / 'root'}")
    rc = main(["audit", f'{flake}#"foo-1.0-pass1"', "--live-bootstrap", str(lb), "--json"])
    report = json.loads(capsys.readouterr().out)
    seeds = [f for f in report["findings"] if f["kind"] == "seed"]
    hex0 = next(f for f in seeds if (f["file"] or "").endswith("hex0-seed"))
    assert not Path(hex0["store_path"]).exists(), "random bytes: only in the chroot store"
    assert (tmp_path / "root" / hex0["store_path"].lstrip("/") / hex0["file"]).is_file()
    assert hex0["size"] == 181 and report["seed_bytes"] == 181 + 632
    assert rc == 1, "the stray blob is found too"


def test_a_path_nix_cannot_take_is_refused_only_where_nix_needs_it(
    pinned_fixture: Path, tmp_path: Path, capsys
) -> None:
    """Nix 2.8's path: references are not percent-decoded: a space cannot be passed."""
    import shutil

    odd = tmp_path / "with space" / "lb"
    shutil.copytree(pinned_fixture, odd)
    assert main(["plan", "--json", "--live-bootstrap", str(odd)]) == 0, "reading needs no Nix"
    assert len(json.loads(capsys.readouterr().out)) == 181
    rc = main(["audit", "stage0", "--json", "--live-bootstrap", str(odd)])
    error = json.loads(capsys.readouterr().out)
    assert rc == 2 and "Nix cannot take this directory" in error["error"] and error["hint"]


# -- 3. output that survives a pipe ----------------------------------------------------------------
def _piped(*argv: str) -> tuple[list[list[str]], str]:
    """Run the CLI with stdout a pipe; the rows, split at tabs, and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()], proc.stderr


def test_plan_in_a_pipe_has_whole_cells_attribute_names_and_numbers_from_1(capsys) -> None:
    rows, err = _piped("plan")
    header, body = rows[0], rows[1:]
    assert header == ["#", "attribute", "directive", "name", "pass", "era", "sources", "predicate"]
    assert main(["plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(body) == len(plan) == 181
    for row, step in zip(body, plan, strict=True):
        assert len(row) == len(header), row
        assert row[0] == str(step["index"] + 1) == str(step["number"])
        assert row[1] == step["attr"], "the name build/verify/audit/bump take, whole"
        assert row[3].startswith(step["name"])
        assert "…" not in "".join(row)
    assert "181 steps" in err

    # the same numbering as build's "step i/N"
    from orchestrator.build.targets import chain_steps, step_index

    steps = chain_steps()
    index = step_index("live-bootstrap", steps)
    for row in body[:5] + body[-5:]:
        ref = index.for_name(row[1])
        assert ref is not None and ref.label().startswith(f"step {row[0]}/181 ")


def test_distfiles_list_in_a_pipe_has_whole_cells(capsys) -> None:
    rows, _ = _piped("distfiles", "list")
    header, body = rows[0], rows[1:]
    assert header == ["filename", "type", "sha256", "first step", "pre-network", "urls"]
    assert main(["distfiles", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(body) == len(listed) > 300
    for row, d in zip(body, listed, strict=True):
        assert row[0] == d["filename"] and row[2] == d["sha256"]
        assert row[5].split() == d["urls"] or (not d["urls"] and row[5].startswith("(git only"))


def test_terminal_tables_never_fold_a_store_path_or_url() -> None:
    """On a narrow terminal the table grows instead: each long cell stays on one line."""
    import io

    from rich.console import Console

    from orchestrator.tables import Rows, columns, emit

    path = "/nix/store/" + "b" * 32 + "-gcc-4.0.4-pass1-with-a-long-name"
    url = "https://example.org/" + "x" * 90 + ".tar.gz"
    table = Rows("t", columns("path", "url", "markup"))
    table.add(path, url, "[bold]not markup[/]")
    buf = io.StringIO()
    emit(table, console=Console(file=buf, force_terminal=True, width=40, color_system=None))
    lines = buf.getvalue().splitlines()
    assert any(path in line and url in line for line in lines), buf.getvalue()
    assert "[bold]not markup[/]" in buf.getvalue()

    # piped: a cell with a tab, a newline or an escape sequence is still one row of 3 cells
    table.add("a\tb", "c\nd", "\x1b[2J")
    plain = io.StringIO()
    emit(table, console=Console(file=plain, force_terminal=False))
    rows = [line.split("\t") for line in plain.getvalue().splitlines()]
    assert rows == [
        ["path", "url", "markup"],
        [path, url, "[bold]not markup[/]"],
        ["a\\tb", "c\\nd", "\\x1b[2J"],
    ]


def test_verify_table_in_a_pipe_keeps_store_paths_whole(capsys) -> None:
    from orchestrator.commands.verify_table import print_table
    from orchestrator.verify.report import PathResult, Report, Status, Summary, now

    ours = "/nix/store/" + "c" * 32 + "-a-rather-long-derivation-name-for-an-80-column-terminal"
    theirs = "/nix/store/" + "d" * 32 + "-a-rather-long-derivation-name-for-an-80-column-terminal"
    result = PathResult(path=ours, status=Status.differs, reason="NAR hashes differ", theirs=theirs)
    report = Report(mode="rebuild", started=now(), results=[result])
    report.summary = Summary.of(report.results, strict=False)
    print_table(report)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "status\tpath\tdetail"
    assert out[1].split("\t") == ["differs", ours, f"vs {theirs} ; NAR hashes differ"]


# -- 4. errors a program can read, seed that cannot silently do nothing --------------------------
def test_json_errors_are_objects_with_the_hint(tmp_path: Path, capsys) -> None:
    rc = main(["plan", "--json", "--live-bootstrap", str(tmp_path / "nope")])
    error = json.loads(capsys.readouterr().out)
    assert rc == 2 and "not a directory" in error["error"] and error["hint"]

    rc = main(["plan", "--json", "--no-such-option"])
    cap = capsys.readouterr()
    error = json.loads(cap.out)
    assert rc == 2 and "--no-such-option" in error["error"] and "usage:" in cap.err

    (tmp_path / "empty").mkdir()
    rc = main(
        ["distfiles", "seed", str(tmp_path / "empty"), "--list", "/nonexistent.json", "--json"]
    )
    error = json.loads(capsys.readouterr().out)
    assert rc == 2 and error["file"] == "/nonexistent.json"


@pytest.mark.nix
def test_seed_that_adds_nothing_fails_and_names_the_missing(tmp_path: Path, capsys) -> None:
    names = [f"never-seen-{os.urandom(6).hex()}.tar.gz" for _ in range(2)]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"filename": n, "sha256": "0" * 64} for n in names]))
    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    (wrong_dir / "unrelated.tar.gz").write_bytes(b"x")

    rc = main(["distfiles", "seed", str(wrong_dir), "--list", str(listing)])
    cap = capsys.readouterr()
    assert rc == 1
    assert "nothing added" in cap.err and all(n in cap.err for n in names)

    rc = main(["distfiles", "seed", str(wrong_dir), "--list", str(listing), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["added"] == 0 and report["counts"]["missing"] == 2
    assert all(n in report["error"] for n in names) and report["hint"]


def test_verify_without_a_mode_lists_every_mode(capsys) -> None:
    rc = main(["verify"])
    err = capsys.readouterr().err
    assert rc == 2
    for mode in ("--against-hydra", "--against-live-bootstrap", "--rebuild"):
        assert mode in err


# -- 6. help and docs ------------------------------------------------------------------------------
def test_every_option_has_help() -> None:
    missing = []
    for path, sub, _ in clidoc.commands(build_parser()):
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # its choices are the commands listed here, each with its help
            if action.help in (None, "", "==SUPPRESS=="):
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}")
    assert not missing, missing


def test_docs_cli_reference_is_the_parser() -> None:
    doc = (REPO / "docs" / "cli.md").read_text()
    assert clidoc.splice(doc, clidoc.reference()) == doc, (
        "docs/cli.md is stale: run `python -m orchestrator.clidoc --write`"
    )
    for path, sub, _ in clidoc.commands(build_parser()):
        assert f"orchestrator {' '.join(path)}" in doc
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for opt in action.option_strings:
                assert opt in doc, (path, opt)


def _examples(text: str) -> list[list[str]]:
    """The orchestrator command lines of the ```sh blocks (the synopsis tables are prose)."""
    out = []
    for block in text.split("```sh\n")[1:]:
        for line in block.split("```", 1)[0].splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                for i in range(len(words) - 2):
                    if words[i + 1 : i + 3] == ["-m", "orchestrator"] and "python" in words[i]:
                        out.append(words[i + 3 :])
    return out


def test_every_documented_command_line_parses() -> None:
    texts = [(REPO / "README.md").read_text(), (REPO / "docs" / "cli.md").read_text()]
    examples = [e for t in texts for e in _examples(t)]
    assert len(examples) > 10
    for argv in examples:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # --help
            assert exc.code == 0, argv


def test_ci_runs_the_readmes_commands() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:]]
    assert blocks[0].startswith("bash .ci/setup && nix ") and "--option sandbox true" in blocks[0]
    test_command = blocks[1]
    ci = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln and ln[0] != "#"]
    assert ci[-1] == test_command, "CI runs exactly the README's test command"
    assert "bash .ci/setup" in ci
    for row in readme.splitlines():
        if row.startswith("| `nix ") and " build " in row:
            assert "--option sandbox true" in row and "nix-command flakes" in row, row


# -- checkout verify -------------------------------------------------------------------------------
def _lock_for(tree: Path, where: Path) -> Path:
    """A flake.lock pinning ``tree`` by its NAR hash (as `nix flake lock` records it)."""
    nar = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "hash", "path", str(tree)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lock = json.loads((REPO / "flake.lock").read_text())
    node = lock["nodes"]["live-bootstrap"]
    node["locked"]["narHash"] = nar
    where.mkdir()
    (where / "flake.lock").write_text(json.dumps(lock))
    return where / "flake.lock"


@pytest.mark.nix
def test_checkout_verify_detects_a_planted_change(nix: str, tmp_path: Path, capsys) -> None:
    tree = tmp_path / "lb"
    (tree / "steps").mkdir(parents=True)
    (tree / "steps" / "manifest").write_text("build: foo-1.0\n")
    lock = _lock_for(tree, tmp_path / "repo")
    assert main(["checkout", "verify", str(tree), "--lock", str(lock)]) == 0
    capsys.readouterr()

    (tree / "steps" / "manifest").write_text("build: foo-1.1\n")
    rc = main(["checkout", "verify", str(tree), "--lock", str(lock), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 1 and not result["matches"] and result["actual"] != result["expected"]

    (tree / "steps" / "manifest").write_text("build: foo-1.0\n")
    (tree / ".git").mkdir()
    rc = main(["checkout", "verify", str(tree), "--lock", str(lock)])
    err = capsys.readouterr().err
    assert rc == 1 and ".git" in err


@pytest.mark.nix
@pytest.mark.checkout
def test_checkout_verify_of_the_pinned_source(nix: str, tmp_path: Path, capsys) -> None:
    import shutil

    source = _real_source()
    assert main(["checkout", "verify", str(source)]) == 0
    copy = tmp_path / "lb"
    shutil.copytree(source, copy, symlinks=True)
    for p in copy.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    (copy / "steps" / "manifest").write_text((copy / "steps" / "manifest").read_text() + "\n")
    assert main(["checkout", "verify", str(copy)]) == 1
    assert "is not the pinned live-bootstrap input" in capsys.readouterr().err


# -- ETA --------------------------------------------------------------------------------------------
def _nix_event(**fields: object) -> str:
    return "@nix " + json.dumps(fields)


def test_eta_stays_a_number_while_an_unmeasured_step_runs(tmp_path: Path) -> None:
    timed, untimed = STORE_DRV.format("timed"), STORE_DRV.format("untimed")
    durations = Durations(tmp_path / "durations.json")
    durations.record("timed", 30.0)
    log = BuildLog()
    start = time.monotonic()
    for i, drv in enumerate((timed, untimed), 1):
        log.feed_line(
            _nix_event(
                action="start", id=i, level=3, type=105, text=f"building '{drv}'", fields=[drv]
            ),
            start,
        )
    assert eta(log, [timed, untimed], durations, start).text() == "ETA 0:30 + 1 never timed"
    log.feed_line(_nix_event(action="stop", id=1), start + 10)
    text = eta(log, [timed, untimed], durations, start + 20).text()
    assert "?" not in text and text == "ETA 0:00 + 1 never timed"
    nothing = eta(BuildLog(), [untimed], durations, start).text()
    assert "?" not in nothing and "never timed" in nothing


# -- 2. setup on Debian's python ------------------------------------------------------------------
@pytest.mark.slow
def test_setup_makes_a_venv_from_debians_python_and_every_help_works(tmp_path: Path) -> None:
    debian = Path("/usr/bin/python3")
    if not debian.is_file():
        pytest.skip("no /usr/bin/python3 (not a Debian-like system python)")
    if subprocess.run([debian, "-c", "import venv, ensurepip"], capture_output=True).returncode:
        pytest.skip("Debian's python3 lacks venv/ensurepip (setup installs python3-venv)")
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["bash", str(REPO / ".ci" / "setup"), "python"],
        cwd=REPO,
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and any(
        s in proc.stdout + proc.stderr
        for s in (
            "Failed to establish a new connection",
            "Temporary failure in name resolution",
            "No matching distribution found",
        )
    ):
        pytest.skip(f"no package index reachable for pip: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "creating the virtual environment" in proc.stdout, "setup says what it does"
    python = venv / "bin" / "python"
    base = subprocess.run(
        [python, "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert base == "/usr", "the venv is made from Debian's python"
    paths = [()] + [path for path, _, _ in clidoc.commands(build_parser())]
    for path in paths:
        run = subprocess.run(
            [python, "-m", "orchestrator", *path, "--help"],
            cwd=tmp_path,  # not the checkout: the installed package answers
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and "usage:" in run.stdout, (path, run.stderr)
