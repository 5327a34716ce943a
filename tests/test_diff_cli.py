"""``orchestrator diff OLD NEW``: every way of naming a tree, every output format, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.conftest import REPO


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_between_fixture_revisions(old_fixture: Path, pinned_fixture: Path, capsys) -> None:
    code, out, _ = run(["diff", str(old_fixture), str(pinned_fixture), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == 1
    assert data["sources_syntax"] == {"old": "untyped", "new": "typed", "changed": True}
    assert {
        "package": "gcc",
        "old": "13.3.0",
        "new": "15.2.0",
        "old_name": "gcc-13.3.0",
        "new_name": "gcc-15.2.0",
    } in data["versions"]
    assert "libatomic_ops-7.6.10-pass1" in {s["attr"] for s in data["steps"]["removed"]}
    assert "perl-Text-CSV-2.06-pass1" in {s["attr"] for s in data["steps"]["added"]}
    # --format json is the same document
    code, out2, _ = run(["diff", str(old_fixture), str(pinned_fixture), "--format", "json"], capsys)
    assert code == 0 and out2 == out


def test_revisions_resolve_to_snapshots(old_fixture: Path, pinned_fixture: Path, capsys) -> None:
    by_path = run(["diff", str(old_fixture), str(pinned_fixture), "--json"], capsys)[1]
    code, by_rev, err = run(["diff", old_fixture.name, pinned_fixture.name, "--json"], capsys)
    assert code == 0, err
    assert by_rev == by_path
    assert "data-only snapshot" in err


def test_committed_snapshot_against_its_source(pinned_fixture: Path, capsys) -> None:
    """steps/upstream.json was generated from the pinned fixture: no changes at all."""
    code, out, _ = run(["diff", "committed", str(pinned_fixture), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["old"]["commit"] == data["new"]["commit"]
    for section in ("steps", "distfiles", "package_pins"):
        assert all(v == [] for v in data[section].values()), section
    assert data["versions"] == [] and data["predicates"] == []
    # a steps/ directory and its upstream.json name the same snapshot
    same = run(["diff", str(REPO / "steps"), str(REPO / "steps/upstream.json"), "--json"], capsys)[
        1
    ]
    assert same == run(["diff", "committed", "committed", "--json"], capsys)[1]
    assert json.loads(same)["old"] == data["old"]


def test_markdown_and_table(old_fixture: Path, pinned_fixture: Path, capsys) -> None:
    code, md, _ = run(
        ["diff", str(old_fixture), str(pinned_fixture), "--format", "markdown"], capsys
    )
    assert code == 0
    assert "| `gcc` | 13.3.0 | 15.2.0 |" in md
    assert "<details><summary>Package pins changed" in md
    code, table, _ = run(["diff", str(old_fixture), str(pinned_fixture)], capsys)
    assert code == 0
    assert "untyped → typed" in table and "gcc-15.2.0.tar.xz" in table


def test_profile_option(old_fixture: Path, pinned_fixture: Path, capsys) -> None:
    code, out, _ = run(
        ["diff", str(old_fixture), str(pinned_fixture), "--json", "--profile", "qemu"], capsys
    )
    assert code == 0
    data = json.loads(out)
    assert data["profile"] == "qemu"
    nix = json.loads(run(["diff", str(old_fixture), str(pinned_fixture), "--json"], capsys)[1])
    assert data["new"]["steps"] != nix["new"]["steps"]  # the kernel bootstrap has more steps


def test_bad_input(tmp_path: Path, pinned_fixture: Path, capsys) -> None:
    code, _, err = run(["diff", str(tmp_path / "missing"), str(pinned_fixture)], capsys)
    assert code == 2 and "not a directory, an upstream.json" in err
    code, _, err = run(["diff", "abcdef1", str(pinned_fixture)], capsys)
    assert code == 2 and "not available offline" in err
    code, _, err = run(["diff", str(tmp_path), str(pinned_fixture)], capsys)
    assert code == 2 and "neither a live-bootstrap tree" in err


def test_unknown_manifest_syntax_names_the_line(
    pinned_fixture: Path, tmp_path: Path, capsys
) -> None:
    edited = shutil.copytree(pinned_fixture, tmp_path / "edited")
    manifest = edited / "steps/manifest"
    lines = manifest.read_text().split("\n")
    target = next(i for i, line in enumerate(lines) if line.startswith("build: gcc-15.2.0"))
    lines[target] = "compile: gcc-15.2.0"
    manifest.write_text("\n".join(lines))
    code, out, err = run(["diff", str(pinned_fixture), str(edited)], capsys)
    assert code == 2 and out == ""
    assert f"steps/manifest:{target + 1}: unknown directive 'compile:'" in err
