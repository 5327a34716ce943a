"""The change report between the two real fixture revisions (2025-02 -> 2026-02), and synthetic
edits of the real data for the kinds of change these two revisions do not contain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.maintain.report import (
    SCHEMA_VERSION,
    ChangeReport,
    compare_chains,
    pair_versions,
    split_name,
)
from orchestrator.maintain.report_render import to_json, to_markdown
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.tree import SourceTree


def report_between(old: Path, new: Path, profile: str = "nix") -> ChangeReport:
    old_tree, new_tree = SourceTree.open(old), SourceTree.open(new)
    return compare_chains(
        old_tree, load_chain(old_tree, profile), new_tree, load_chain(new_tree, profile)
    )


@pytest.fixture(scope="module")
def report(old_fixture: Path, pinned_fixture: Path) -> ChangeReport:
    return report_between(old_fixture, pinned_fixture)


def pins_of(snapshot: Path) -> dict[str, str]:
    out = {}
    for line in (snapshot / "steps/SHA256SUMS.pkgs").read_text().splitlines():
        if line.strip():
            sha, name = line.split()
            out[name] = sha
    return out


def sources_line(snapshot: Path, pkg: str, filename: str) -> list[str]:
    for line in (snapshot / "steps" / pkg / "sources").read_text().splitlines():
        if filename in line:
            return line.split()
    raise AssertionError(f"{filename} not in steps/{pkg}/sources")


def test_revisions_and_sources_syntax(
    report: ChangeReport, old_fixture: Path, pinned_fixture: Path
) -> None:
    assert report.old.commit == (old_fixture / "COMMIT").read_text().split()[0]
    assert report.new.commit == (pinned_fixture / "COMMIT").read_text().split()[0]
    # 2025-02 used `<url> <sha256>` lines, 2026-02 the typed `f <url> <sha256>` form
    assert sources_line(old_fixture, "gcc-13.3.0", "gcc-13.3.0.tar.xz")[0].startswith("https://")
    assert sources_line(pinned_fixture, "gcc-15.2.0", "gcc-15.2.0.tar.xz")[0] == "f"
    assert (report.sources_syntax.old, report.sources_syntax.new) == ("untyped", "typed")
    assert report.sources_syntax.changed
    assert report.old.sources_syntax == "untyped" and report.new.sources_syntax == "typed"


def test_final_gcc_version_change(report: ChangeReport) -> None:
    gcc = [v for v in report.versions if v.package == "gcc"]
    assert [(v.old, v.new) for v in gcc] == [("13.3.0", "15.2.0")]
    assert (gcc[0].old_name, gcc[0].new_name) == ("gcc-13.3.0", "gcc-15.2.0")
    # the same step under its new version: neither added nor removed
    assert "gcc-15.2.0-pass1" not in {s.attr for s in report.steps.added}
    assert "gcc-13.3.0-pass1" not in {s.attr for s in report.steps.removed}
    # gcc 4.0.4, 4.7.4 and 10.5.0 are on both sides: no version change for them
    assert {v.old for v in gcc} == {"13.3.0"}


def test_other_known_version_changes(report: ChangeReport) -> None:
    pairs = {(v.package, v.old, v.new) for v in report.versions}
    assert ("curl", "8.5.0", "8.17.0") in pairs
    assert ("mes", "0.27", "0.27.1") in pairs
    # several perls come and go: the final one is paired, not an intermediate one
    assert [(v.old, v.new) for v in report.versions if v.package == "perl"] == [
        ("5.32.1", "5.42.0")
    ]


def test_added_and_removed_steps(report: ChangeReport) -> None:
    added = {s.attr for s in report.steps.added}
    removed = {s.attr for s in report.steps.removed}
    assert {
        "perl-Devel-Tokenizer-C-0.11-pass1",
        "improve-musl_target-1",
        "perl-Text-CSV-2.06-pass1",
    } <= added
    assert {"libatomic_ops-7.6.10-pass1", "improve-musl_libdir-1", "perl-5.10.1-pass1"} <= removed
    # only an uninstall whose arguments changed can be both (its attr is positional)
    assert not {a for a in added & removed if not a.startswith("uninstall-")}
    by_attr = {s.attr: s for s in report.steps.added}
    assert by_attr["improve-musl_target-1"].directive == "improve"


def test_reordered_steps(report: ChangeReport) -> None:
    moved = {m.attr: m for m in report.steps.reordered}
    # zlib was bumped *and* moved before the perl chain
    assert moved["zlib-1.3.1-pass1"].old_attr == "zlib-1.2.13-pass1"
    assert moved["zlib-1.3.1-pass1"].old_index != moved["zlib-1.3.1-pass1"].new_index
    assert "libarchive-3.5.2-pass1" in moved
    # the bootstrap core did not move
    assert "gcc-4.0.4-pass1" not in moved


def test_distfiles(report: ChangeReport, pinned_fixture: Path, old_fixture: Path) -> None:
    added = {d.filename: d for d in report.distfiles.added}
    removed = {d.filename: d for d in report.distfiles.removed}
    assert "gcc-15.2.0.tar.xz" in added and "gcc-13.3.0.tar.xz" in removed
    assert (
        added["gcc-15.2.0.tar.xz"].sha256
        == sources_line(pinned_fixture, "gcc-15.2.0", "gcc-15.2.0.tar.xz")[2]
    )
    assert added["gcc-15.2.0.tar.xz"].steps == ["gcc-15.2.0"]
    assert (
        removed["gcc-13.3.0.tar.xz"].sha256
        == sources_line(old_fixture, "gcc-13.3.0", "gcc-13.3.0.tar.xz")[1]
    )
    # the same files under other URLs (same hashes)
    assert {"make-4.2.1.tar.gz", "gcc-10.5.0.tar.xz"} <= {
        u.filename for u in report.distfiles.urls_changed
    }
    # these two revisions never re-hash a file name; see the synthetic test below
    assert report.distfiles.rehashed == []


def test_package_pins(report: ChangeReport, old_fixture: Path, pinned_fixture: Path) -> None:
    old, new = pins_of(old_fixture), pins_of(pinned_fixture)
    changed = {p.file: p for p in report.package_pins.changed}
    assert changed["bash-5.2.15_0.tar.bz2"].old_sha256 == old["bash-5.2.15_0.tar.bz2"]
    assert changed["bash-5.2.15_0.tar.bz2"].new_sha256 == new["bash-5.2.15_0.tar.bz2"]
    assert old["bash-5.2.15_0.tar.bz2"] != new["bash-5.2.15_0.tar.bz2"]
    assert "gcc-15.2.0_0.tar.bz2" in {p.file for p in report.package_pins.added}
    assert "gcc-13.3.0_0.tar.bz2" in {p.file for p in report.package_pins.removed}
    # every change listed is real, and every real change is listed
    assert set(changed) == {f for f in old.keys() & new.keys() if old[f] != new[f]}


def test_same_tree_is_an_empty_report(pinned_fixture: Path) -> None:
    report = report_between(pinned_fixture, pinned_fixture)
    assert report.empty
    assert "No changes." in to_markdown(report)


def test_rehash_and_predicate_change_on_edited_real_data(
    pinned_fixture: Path, tmp_path: Path
) -> None:
    edited = shutil.copytree(pinned_fixture, tmp_path / "edited")
    # a distfile re-hashed upstream: same name, new sha256
    sources = edited / "steps/gcc-15.2.0/sources"
    fields = sources_line(pinned_fixture, "gcc-15.2.0", "gcc-15.2.0.tar.xz")
    new_sha = "0" * 64
    sources.write_text(sources.read_text().replace(fields[2], new_sha))
    # a predicate that now evaluates the other way under every profile
    manifest = edited / "steps/manifest"
    assert "improve: reconfigure ( CONFIGURATOR != True )" in manifest.read_text()
    manifest.write_text(
        manifest.read_text().replace(
            "improve: reconfigure ( CONFIGURATOR != True )",
            "improve: reconfigure ( CONFIGURATOR == True )",
        )
    )
    report = report_between(pinned_fixture, edited)
    assert [(r.filename, r.old_sha256, r.new_sha256) for r in report.distfiles.rehashed] == [
        ("gcc-15.2.0.tar.xz", fields[2], new_sha)
    ]
    changed = [p for p in report.predicates if p.name == "reconfigure"]
    assert {p.profile for p in changed} == {"nix", "bwrap-ci", "qemu"}
    assert all((p.old_survives, p.new_survives) == (True, False) for p in changed)
    assert all(p.new_predicate == "( CONFIGURATOR == True )" for p in changed)
    assert "improve-reconfigure-1" in {s.attr for s in report.steps.removed}


def test_json_is_stable_and_round_trips(report: ChangeReport) -> None:
    data = json.loads(to_json(report))
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert list(data) == [
        "schema_version",
        "profile",
        "old",
        "new",
        "sources_syntax",
        "steps",
        "versions",
        "distfiles",
        "predicates",
        "package_pins",
        "rebuild",
    ]
    assert set(data["rebuild"]) == {"steps_changed", "rebuilt", "kept"}
    assert set(data["steps"]) == {"added", "removed", "reordered"}
    assert set(data["distfiles"]) == {"added", "removed", "rehashed", "urls_changed"}
    assert set(data["package_pins"]) == {"added", "removed", "changed"}
    assert ChangeReport.model_validate_json(to_json(report)) == report


def test_markdown(report: ChangeReport) -> None:
    md = to_markdown(report)
    assert md.startswith("## live-bootstrap `01257b3b0c2a` → `984b832224ed`")
    assert "**`sources` syntax**: untyped → typed" in md
    assert "| `gcc` | 13.3.0 | 15.2.0 |" in md
    assert "`perl-Devel-Tokenizer-C-0.11-pass1`" in md
    assert "`bash-5.2.15_0.tar.bz2`" in md


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("gcc-13.3.0", ("gcc", "13.3.0")),
        ("perl-Devel-Tokenizer-C-0.11", ("perl-Devel-Tokenizer-C", "0.11")),
        ("dist-3.5-236", ("dist", "3.5-236")),
        ("linux-4.14.341-openela", ("linux", "4.14.341-openela")),
        ("musl_libdir", None),
    ],
)
def test_split_name(name: str, split: tuple[str, str] | None) -> None:
    assert split_name(name) == split


def test_version_pairing_is_numeric() -> None:
    # 10 > 9 numerically: 9.1 -> 10.2 pairs the highest with the highest
    changes = pair_versions(["foo-9.1", "foo-1.0", "bar-2"], ["foo-10.2", "foo-1.0", "baz-1"])
    assert [(c.package, c.old, c.new) for c in changes] == [("foo", "9.1", "10.2")]
