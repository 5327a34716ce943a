"""Upstream text on a terminal is shown literally: no rich markup, no emoji codes, control and
format characters made visible (display.py), in the commands that print it."""

from __future__ import annotations

import io
import json
import shutil
from collections import deque
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.build.nixlog import BuildLog, BuildRecord
from orchestrator.build.progress import StepIndex
from orchestrator.cli import main
from orchestrator.commands.build_view import summary_table
from orchestrator.display import lines, text, visible
from tests.conftest import materialize


def rendered(renderable: object) -> str:
    """What a real colour terminal receives."""
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="truecolor", width=200).print(renderable)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain-1.0", "plain-1.0"),
        ("é ünïcode", "é ünïcode"),  # printable non-ASCII is left alone
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("a\rb\nc\td", "a\\rb\\nc\\td"),
        ("a\0b\x7f", "a\\x00b\\x7f"),
        ("a\x9bb", "a\\x9bb"),  # C1 CSI
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("a\u2028b", "a\\u2028b"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
    ],
)
def test_visible_escapes_exactly_the_non_printable(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def test_visible_can_keep_line_breaks() -> None:
    assert visible("error\x1b\n  hint: x", keep_newlines=True) == "error\\x1b\n  hint: x"


def test_text_is_never_markup_nor_emoji() -> None:
    out = rendered(text("[bold]x[/] :thumbs_up: \x1b[31m"))
    assert "[bold]x[/] :thumbs_up: \\x1b[31m" in out
    assert "👍" not in out and "\x1b[1m" not in out  # no bold, no emoji
    # our own style still applies to our own parts
    assert "\x1b[" in rendered(text(("ok", "green")))
    assert "\\x1b" in rendered(lines("one\x1b\ntwo")) and "one" in rendered(lines("one\ntwo"))


def test_build_summary_shows_derivation_names_literally() -> None:
    log = BuildLog()
    rec = BuildRecord(
        drv_path="/nix/store/" + "a" * 32 + "-[red]x\x1b[2J.drv", activity=1, started=0
    )
    rec.tail = deque(["\x1b[31mred"])
    log.builds[rec.drv_path] = rec
    out = rendered(summary_table(log, StepIndex([]), {}, 1.0))
    assert "[red]x\\x1b[2J" in out and "\x1b[2J" not in out


@pytest.fixture(scope="module")
def marked_tree(tmp_path_factory: pytest.TempPathFactory, pinned_fixture: Path) -> Path:
    """The pinned fixture with a predicate whose value is markup and a terminal escape."""
    root = materialize(pinned_fixture, tmp_path_factory.mktemp("marked") / "lb")
    manifest = root / "steps/manifest"
    text_ = manifest.read_text().replace(
        "build: mes-0.27.1\n", "build: mes-0.27.1 ( ARCH != [bold]x\x1b[2J )\n", 1
    )
    assert "[bold]" in text_
    manifest.write_text(text_)
    return root


def test_plan_prints_predicates_literally(marked_tree: Path, capsys) -> None:
    assert main(["plan", "--live-bootstrap", str(marked_tree)]) == 0
    out = capsys.readouterr().out
    assert "[bold]x\\x1b[2J" in out and "\x1b" not in out
    # --json carries the exact text (JSON escapes it by itself)
    assert main(["plan", "--json", "--live-bootstrap", str(marked_tree)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["predicate"] == "( ARCH != [bold]x\x1b[2J )" for r in rows)


def test_generate_diff_prints_escapes_visibly(marked_tree: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "steps"
    pristine = tmp_path / "pristine"
    shutil.copytree(marked_tree, pristine, symlinks=True)
    manifest = pristine / "steps/manifest"
    manifest.write_text(manifest.read_text().replace(" ( ARCH != [bold]x\x1b[2J )", ""))
    assert main(["generate", "--live-bootstrap", str(pristine), "--output", str(out)]) == 0
    capsys.readouterr()
    argv = ["generate", "--check", "--diff", "--live-bootstrap", str(marked_tree)]
    assert main([*argv, "--output", str(out)]) == 1
    diff = capsys.readouterr().out
    assert "[bold]x\\x1b[2J" in diff and "\x1b" not in diff
