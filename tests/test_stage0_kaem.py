"""The kaem reader and the stage0 interpreter/translation (orchestrator.stage0.translate), no Nix.

Synthetic scripts always; stage0-posix's real scripts when LIVE_BOOTSTRAP_CHECKOUT points at a
live-bootstrap checkout with submodules (or the pinned flake input is in the store).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from orchestrator.errors import ParseError, TreeError
from orchestrator.generate import write as generate
from orchestrator.stage0 import kaem
from orchestrator.stage0 import translate as stage0
from orchestrator.upstream.tree import SourceTree

from .conftest import LB_FIXTURES, PINNED, REPO
from .support.stage0 import parse_script


def tokens(text: str, env: dict[str, str] | None = None) -> list[list[str]]:
    return [t for t, _ in parse_script(text, env=env)]


# -- the reader ----------------------------------------------------------------------------------
def test_tokens_comments_and_continuations() -> None:
    text = (
        "#! /usr/bin/env bash\n"
        "./a  b\tc # trailing comment\n"
        "\n"
        "./x --f \\\n"
        "\t-g \\\n"
        "\t./out\n"
        "./one; ./two arg\n"
        "./mid#comment ignored\n"
    )
    assert tokens(text) == [
        ["./a", "b", "c"],
        ["./x", "--f", "-g", "./out"],
        ["./one"],
        ["./two", "arg"],
        ["./mid"],
    ]


def test_strings_and_escapes() -> None:
    assert tokens('./p "a b" "x\\"y" z\\ w "\\n"\n') == [["./p", "a b", 'x"y', "z w", "\n"]]
    # a string ends its token: the rest of the word is a new token
    assert tokens('./p "ab"cd\n') == [["./p", "ab", "cd"]]


def test_last_command_without_newline_is_not_run() -> None:
    # kaem.c: collect_token returns EOF before the command is executed
    assert tokens("./a\n./b") == [["./a"]]


def test_variables() -> None:
    text = (
        'A="x86"\n'
        "B=${A}/bin\n"
        "./t ${A} ${B}/tool${UNSET} pre${A}post ${UNSET:-fallback} ${A:-no}\n"
        'SPACE=" "\n'
        "./t ${SPACE} kept\n"
    )
    assert tokens(text)[-1] == ["./t", "kept"]  # a token that expands to " " is dropped
    assert tokens(text)[2] == ["./t", "x86", "x86/bin/tool", "prex86post", "fallback", "x86"]


def test_variable_errors() -> None:
    with pytest.raises(ParseError, match="improperly used variable"):
        tokens("./t $A\n")
    with pytest.raises(ParseError, match="improperly terminated variable"):
        tokens("./t ${A\n")
    with pytest.raises(ParseError, match="improperly terminated string"):
        tokens('./t "abc\n')


def test_alias_is_expanded_when_defined_and_split_when_used() -> None:
    text = 'T="../bin"\nalias CC="${T}/cc --arch x -f"\nCC a.c -o ${T}/a\n'
    assert tokens(text)[-1] == ["../bin/cc", "--arch", "x", "-f", "a.c", "-o", "../bin/a"]


def test_dollar_at_is_kaems_arguments_from_double_dash() -> None:
    # variable.c variable_all: joins from "--" on (the "--" included) and replaces the token
    assert kaem.expand("pre$@", lambda _: None, ["kaem", "-f", "s", "--", "a", "b"]) == "-- a b"
    assert kaem.expand("$@", lambda _: None, ["kaem"]) == ""


# -- the interpreter over a synthetic tree ------------------------------------------------------
def make_tree(
    root: Path, files: dict[str, str | bytes], executable: tuple[str, ...] = ()
) -> SourceTree:
    (root / "steps").mkdir(parents=True, exist_ok=True)
    (root / "steps" / "manifest").write_text("")
    base = root / "seed" / "stage0-posix"
    for rel, content in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        p.chmod(0o755 if rel in executable else 0o644)
    return SourceTree.open(root)


BASE_FILES: dict[str, str | bytes] = {
    "bootstrap-seeds/POSIX/x86/hex0-seed": b"\x7fELF-seed",
    "bootstrap-seeds/POSIX/x86/kaem-optional-seed": b"\x7fELF-kaem",
    "x86/hex0_x86.hex0": "00\n",
    "x86/src.hex0": "01\n",
    "x86/artifact/README": "",
    "x86/bin/placeholder": "",
    "M2libc/x86/libc.M1": "",
    "sub/sub.kaem": "../x86/artifact/hex0 ../x86/src.hex0 ../x86/artifact/from-sub\n",
}


def test_interpreter_follows_nested_scripts_cd_if_and_exec(tmp_path: Path) -> None:
    files = dict(BASE_FILES)
    files["kaem.x86"] = (
        "./bootstrap-seeds/POSIX/x86/kaem-optional-seed ./x86/seed.kaem\n"
        "./x86/artifact/kaem-0 --verbose --strict --file ./x86/run.kaem\n"
    )
    files["x86/seed.kaem"] = (
        "./bootstrap-seeds/POSIX/x86/hex0-seed ./x86/hex0_x86.hex0 ./x86/artifact/hex0\n"
        "./x86/artifact/hex0 ./x86/src.hex0 ./x86/artifact/kaem-0\n"
    )
    files["x86/bin/match"] = ""
    files["x86/run.kaem"] = (
        'ARCH="x86"\n'
        "PATH=./${ARCH}/bin\n"
        "cd sub\n"
        "../x86/artifact/kaem-0 --file sub.kaem\n"
        "cd ..\n"
        "if match ${ARCH} x86; then\n"
        "  ./x86/artifact/hex0 ./x86/src.hex0 ./x86/artifact/yes\n"
        "else\n"
        "  ./x86/artifact/hex0 ./x86/src.hex0 ./x86/artifact/no\n"
        "fi\n"
        "./x86/artifact/hex0 -o ./x86/bin/tool ./x86/artifact/yes\n"
        "exec ./x86/artifact/kaem-0 --file ./x86/after.kaem\n"
        "./x86/artifact/hex0 ./x86/src.hex0 ./x86/artifact/never\n"
    )
    files["x86/after.kaem"] = "echo done\n"
    tree = make_tree(tmp_path, files, executable=("bootstrap-seeds/POSIX/x86/hex0-seed",))
    commands = stage0.interpret(tree, stage0.ARCHES["x86"]).commands
    assert [c.output for c in commands] == [
        "x86/artifact/hex0",
        "x86/artifact/kaem-0",
        "x86/artifact/from-sub",
        "x86/artifact/yes",
        "x86/bin/tool",
    ]
    first, _, nested, _, flagged = commands
    assert first.tool == "bootstrap-seeds/POSIX/x86/hex0-seed" and first.tool_kind == "source"
    assert (
        nested.cwd == "sub" and nested.script == "sub/sub.kaem" and nested.tool_kind == "artifact"
    )
    assert [a.kind for a in nested.args] == ["source", "output"]
    assert [a.kind for a in flagged.args] == ["literal", "output", "artifact"]


def test_interpreter_errors(tmp_path: Path) -> None:
    files = dict(BASE_FILES)
    files["kaem.x86"] = "./bootstrap-seeds/POSIX/x86/kaem-optional-seed ./x86/missing.kaem\n"
    tree = make_tree(tmp_path / "a", files)
    with pytest.raises(TreeError, match="kaem script not found"):
        stage0.interpret(tree, stage0.ARCHES["x86"])

    files["kaem.x86"] = "./bootstrap-seeds/POSIX/x86/hex0-seed ./x86/hex0_x86.hex0 ./x86/src.hex0\n"
    tree = make_tree(tmp_path / "b", files)
    with pytest.raises(ParseError, match="which argument of hex0-seed is its output") as exc:
        stage0.interpret(tree, stage0.ARCHES["x86"])
    assert exc.value.line == 1 and exc.value.file and exc.value.file.endswith("kaem.x86")

    files["kaem.x86"] = "tool a b\n"
    tree = make_tree(tmp_path / "c", files)
    with pytest.raises(ParseError, match="PATH, which the scripts did not set"):
        stage0.interpret(tree, stage0.ARCHES["x86"])

    files["kaem.x86"] = "./x86/bin/mystery x ./x86/artifact/out\n"
    tree = make_tree(tmp_path / "d", files)
    with pytest.raises(ParseError, match="no such program"):
        stage0.interpret(tree, stage0.ARCHES["x86"])

    files["kaem.x86"] = "if ./x86/src.hex0 a; then\nfi\n"
    tree = make_tree(tmp_path / "e", files)
    with pytest.raises(ParseError, match="statically"):
        stage0.interpret(tree, stage0.ARCHES["x86"])


def test_a_data_only_snapshot_keeps_only_checked_files() -> None:
    snap = LB_FIXTURES / PINNED
    if not snap.is_dir():
        pytest.skip(f"no fixture at {snap}")
    # nothing committed: nothing to keep
    assert stage0.render_stage0(SourceTree.open(snap)) == ({}, [])
    # the committed files, checked against their record (tests/test_stage0_record.py: drift)
    files, kept = stage0.render_stage0(SourceTree.open(snap), REPO / "steps" / "stage0")
    assert kept == ["amd64.json", "x86.json"]
    assert set(files) == {"amd64.json", "x86.json", "meta.json"}
    assert files["x86.json"] == (REPO / "steps/stage0/x86.json").read_text()


def test_renderer_is_registered_once() -> None:
    import importlib

    importlib.reload(stage0)
    assert [prefix for prefix, _ in generate.EXTRA_RENDERERS].count("stage0") == 1


# -- the real scripts ----------------------------------------------------------------------------
def _checkout() -> SourceTree:
    path = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not path:
        pytest.skip(
            "LIVE_BOOTSTRAP_CHECKOUT is not set (a live-bootstrap checkout with submodules)"
        )
    tree = SourceTree.open(path)
    if tree.commit is None:  # an exported tree cannot name its commit: the pinned one
        lock = json.loads((REPO / "flake.lock").read_text())
        tree = SourceTree.open(path, commit=lock["nodes"]["live-bootstrap"]["locked"]["rev"])
    if not stage0.available(tree, stage0.ARCHES["x86"]):
        pytest.skip(f"{path} has no seed/stage0-posix/kaem.x86 (submodules not checked out?)")
    return tree


@pytest.fixture(scope="module")
def checkout() -> SourceTree:
    return _checkout()


@pytest.mark.checkout
@pytest.mark.parametrize("arch", ["x86", "amd64"])
def test_real_scripts_translate(checkout: SourceTree, arch: str) -> None:
    a = stage0.ARCHES[arch]
    interp = stage0.interpret(checkout, a)
    commands = interp.commands
    # the first program is the hex0 seed; everything after runs an artifact of the chain
    assert commands[0].tool == f"{a.seeds}/hex0-seed"
    assert commands[0].output == f"{a.arch_dir}/artifact/hex0"
    assert all(c.tool_kind == "artifact" for c in commands[1:])
    # every file a command reads is a source or was written by an earlier command
    written: set[str] = set()
    for c in commands:
        for arg in c.args:
            if arg.kind == "artifact":
                assert arg.path in written, (c.script, c.line, arg.text)
        if c.output:
            written.add(c.output)
    plan = stage0.plan(checkout, a)
    answers = checkout.read_text(f"{stage0.STAGE0}/{a.answers}")
    listed = {line.split()[1].rsplit("/", 1)[1] for line in answers.splitlines() if line.strip()}
    assert listed <= set(plan.tools)
    assert set(plan.checks) == {"self-reproduction", "answers"}
    # every step's builder is the seed (the first step only) or an earlier step
    seen: set[str] = set()
    for i, step in enumerate(plan.steps):
        if step.builder.src is not None:
            assert i == 0 and step.builder.src == f"{a.seeds}/hex0-seed"
        else:
            assert step.builder.step in seen, step.id
        seen.add(step.id)


@pytest.mark.checkout
def test_real_render_is_deterministic_and_committed(checkout: SourceTree) -> None:
    first, kept = stage0.render_stage0(checkout, REPO / "steps" / "stage0")
    second, _ = stage0.render_stage0(checkout, REPO / "steps" / "stage0")
    assert first == second and kept == []
    assert set(first) == {"x86.json", "amd64.json", "meta.json"}
    for name, text in first.items():
        committed = REPO / "steps" / "stage0" / name
        assert committed.read_text() == text, f"steps/stage0/{name} is stale: run generate"
        json.loads(text)


@pytest.mark.checkout
def test_real_self_reproductions_are_seeds(checkout: SourceTree) -> None:
    """The steps checked against seeds are the ones the scripts' comments name, and the seeds
    are the files the fixture lists (git blob ids)."""
    listing = LB_FIXTURES / PINNED / "stage0-posix" / "bootstrap-seeds.ls-tree-with-sizes.txt"
    blobs = {}
    if listing.is_file():
        for line in listing.read_text().splitlines():
            meta, _, path = line.partition("\t")
            blobs[path] = meta.split()[2]
    for arch in stage0.ARCHES.values():
        plan = stage0.plan(checkout, arch)
        fixed = {s.args[1].step: s.same_as.src for s in plan.steps if s.same_as is not None}
        assert fixed == {
            f"{arch.arch_dir}/artifact/hex0": f"{arch.seeds}/hex0-seed",
            f"{arch.arch_dir}/artifact/kaem-0": f"{arch.seeds}/kaem-optional-seed",
        }
        for seed in fixed.values():
            data = checkout.read_bytes(f"{stage0.STAGE0}/{seed}")
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            rel = seed.removeprefix("bootstrap-seeds/")
            if rel in blobs:
                assert blobs[rel] == blob


def test_a_missing_seed_input_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """The x86 hex0 seed waits forever for an input file that is not there: generation must
    refuse such a command up front, naming the script and line."""
    files = dict(BASE_FILES)
    files["kaem.x86"] = (
        "./bootstrap-seeds/POSIX/x86/hex0-seed ./x86/not-there.hex0 ./x86/artifact/hex0\n"
    )
    tree = make_tree(tmp_path / "a", files)
    with pytest.raises((ParseError, TreeError)) as exc:
        stage0.interpret(tree, stage0.ARCHES["x86"])
    assert exc.value.line == 1 and exc.value.file and exc.value.file.endswith("kaem.x86")
