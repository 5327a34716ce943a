"""A hostile or broken upstream tree (issue 8, "Bad input"): every case is refused through the
real command line with a message naming the file (and line), a non-zero exit, no traceback and
nothing written. The trees are the real pinned fixture, materialized, with one thing changed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import GenerateError, ParseError
from orchestrator.generate.write import write_atomically
from orchestrator.upstream.names import check_name, check_path, check_store_name
from tests.conftest import REPO, materialize

PKG = "mes-0.27.1"  # a kaem-era build with sources and x86 pins
SHA = "c" * 64


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, pinned_fixture: Path) -> Path:
    return materialize(pinned_fixture, tmp_path_factory.mktemp("pristine") / "lb")


@pytest.fixture
def lb(pristine: Path, tmp_path: Path) -> Path:
    root = tmp_path / "lb"
    shutil.copytree(pristine, root, symlinks=True)
    return root


def insert_manifest_line(root: Path, line: str) -> int:
    """Insert ``line`` right after the manifest's first ``build:``; return its line number."""
    manifest = root / "steps/manifest"
    lines = manifest.read_text().split("\n")
    at = next(i for i, text in enumerate(lines) if text.startswith("build: ")) + 1
    lines.insert(at, line)
    manifest.write_text("\n".join(lines))
    return at + 1


def generate_fails(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`generate` of ``root`` fails cleanly; return what it printed on stderr."""
    out = tmp_path / "out" / "steps"
    rc = main(["generate", "--live-bootstrap", str(root), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "error:" in err
    assert not out.parent.exists(), "nothing may be written, not even --output's parent"
    return " ".join(err.split())  # rich may wrap long messages


# -- names that would become Nix syntax or paths outside steps/ ---------------------------------


def test_injection_through_a_step_name_is_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = 'a]++(builtins.trace"INJECTED"[])++[./b'
    (lb / "steps" / name).mkdir(parents=True)  # "a matching directory"
    (lb / "steps" / name / "pass1.kaem").write_text("")
    line = insert_manifest_line(lb, f"build: {name}")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "is not a valid name" in err
    assert "INJECTED" in err  # the name is quoted in the message, literally


def test_traversal_through_a_step_name_is_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (lb / "x").mkdir()
    (lb / "x" / "pass1.kaem").write_text("")  # steps/../x exists
    line = insert_manifest_line(lb, "build: ../x")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "'../x' is not a valid name" in err
    assert not list(tmp_path.rglob("x-pass1.nix"))


@pytest.mark.parametrize(
    "name",
    ["a\rb", "a\0b", "a${x}", "${x}", "a\u2028b", "a\x0bb", "a\x1b[2Jb", "[bold]x", ".hidden"],
    ids=[
        "cr",
        "nul",
        "interpolation",
        "bare-interpolation",
        "u2028",
        "vt",
        "escape",
        "markup",
        "dot",
    ],
)
@pytest.mark.parametrize("directive", ["build", "improve"])
def test_step_names_outside_the_grammar_are_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, directive: str
) -> None:
    if "\0" not in name:
        # the directory (or script) exists, so only the name itself can be the reason
        target = lb / "steps" / name if directive == "build" else lb / "steps/improve"
        target.mkdir(parents=True, exist_ok=True)
        (target / ("pass1.kaem" if directive == "build" else f"{name}.sh")).write_text("")
    line = insert_manifest_line(lb, f"{directive}: {name}")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "is not a valid name" in err
    # shown literally: the escape made visible, markup not interpreted
    assert "\x1b" not in err and "\r" not in err
    if name == "[bold]x":
        assert "[bold]x" in err


def test_newline_in_a_name_is_refused_by_fullmatch() -> None:
    # `re.match(...$)` accepts a trailing newline; the grammar uses fullmatch
    for check in (check_name, check_store_name):
        with pytest.raises(ParseError):
            check("ok\n", "name", "f", 1)
    with pytest.raises(ParseError):
        check_path("/usr/bin/x\n", "path", "f", 1)


def test_uninstall_arguments_follow_the_grammar(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = insert_manifest_line(lb, "uninstall: perl-5.6.2 /usr/../etc/passwd")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "'/usr/../etc/passwd' is not a valid path" in err


def test_define_names_follow_the_grammar(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = insert_manifest_line(lb, "define: A${b} = 1")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "is not a valid variable" in err


@pytest.mark.parametrize("line", ["PATH", "A${x}=1", "unset A", "export A;B=1"])
def test_env_lines_are_parsed_at_generation(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    env = lb / "steps/env"
    n = len(env.read_text().split("\n"))
    with env.open("a") as fh:
        fh.write(line + "\n")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/env:{n}:" in err


# -- distfile names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../evil.tar.gz",
        "sub/evil.tar.gz",
        "..",
        "${x}.tar.gz",
        ".hidden.tar.gz",
        "é.tar.gz",
        "a" * 208,
    ],
    ids=["dotdot", "slash", "bare-dotdot", "interpolation", "leading-dot", "non-ascii", "too-long"],
)
def test_distfile_names_must_be_store_path_names(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    sources = lb / "steps" / PKG / "sources"
    n = len(sources.read_text().splitlines()) + 1
    with sources.open("a") as fh:
        fh.write(f"f https://example.org/x.tar.gz {SHA} {name}\n")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/{PKG}/sources:{n}:" in err and "is not a valid store name" in err


def test_store_name_grammar_agrees_with_nix(nix: str) -> None:
    """Our verdict on a name is Nix's own (a derivation of that name, evaluated by real Nix),
    except for a leading '.', which the grammar refuses on purpose (Nix 2.3 refused it too;
    Nix 2.8 accepts it)."""
    names = [
        "mes-0.27.1.tar.gz",
        "a+b=c?d_e",
        "-leading-dash",
        "x" * 207,
        "x" * 208,  # fits a store path, but not the derivation's own <name>.drv
        "${x}.tar.gz",
        "a b",
        "é",
        "a/b",
        "a:b",
        "a~b",
    ]
    expr = '{ name }: (derivation { inherit name; builder = "x"; system = "x"; }).drvPath'

    def nix_accepts(name: str) -> bool:
        proc = subprocess.run(
            ["nix-instantiate", "--eval", "-E", expr, "--argstr", "name", name],
            capture_output=True,
        )
        return proc.returncode == 0

    def ours(name: str) -> bool:
        try:
            check_store_name(name, "name", "f", 1)
            return True
        except ParseError:
            return False

    for name in names:
        assert ours(name) == nix_accepts(name), name
    assert nix_accepts(".hidden") and not ours(".hidden")


# -- symlinks -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["steps/env", f"steps/{PKG}/{PKG}.x86.checksums"])
def test_a_symlink_out_of_the_tree_is_never_read(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    (lb / which).unlink()
    (lb / which).symlink_to("/etc/os-release")
    err = generate_fails(lb, tmp_path, capsys)
    assert "leads out of the live-bootstrap tree" in err and which in err
    assert "/etc/os-release" in err


def test_a_relative_symlink_out_of_the_tree_is_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside-sources"
    outside.write_text(f"f https://example.org/x.tar.gz {SHA}\n")
    src = lb / "steps" / PKG / "sources"
    src.unlink()
    src.symlink_to(os.path.relpath(outside, src.parent))
    err = generate_fails(lb, tmp_path, capsys)
    assert "leads out of the live-bootstrap tree" in err


def test_in_tree_symlinks_still_work(lb: Path, tmp_path: Path) -> None:
    # the fixture's own symlinks (patches-pass3 -> patches-pass2) are followed as before
    out = tmp_path / "steps"
    assert main(["generate", "--live-bootstrap", str(lb), "--output", str(out)]) == 0
    assert (
        'patchesDir = "steps/musl-1.2.5/patches-pass3"'
        in (out / "musl-1.2.5-pass3.nix").read_text()
    )


def test_in_tree_symlinks_resolve_alike_on_disk_and_in_the_listing(
    pristine: Path, pinned_fixture: Path
) -> None:
    from orchestrator.upstream.tree import SourceTree

    link = "steps/gcc-10.5.0/files/decDPD.h.preamble"  # -> ../../gcc-4.7.4/files/...
    target = "steps/gcc-4.7.4/files/decDPD.h.preamble"
    on_disk, listed = SourceTree.open(pristine), SourceTree.open(pinned_fixture)
    assert on_disk.resolve(link) == listed.resolve(link) == target
    assert on_disk.kind(link) == listed.kind(link) == "symlink"
    assert on_disk.read_text(link) == (pristine / target).read_text()
    # two hops: gcc-15.2.0's copy links to gcc-10.5.0's, which links on
    assert listed.resolve("steps/gcc-15.2.0/files/decDPD.h.preamble") == target
    assert on_disk.is_dir("steps/musl-1.2.5/patches-pass3") and listed.is_dir(
        "steps/musl-1.2.5/patches-pass3"
    )


def test_a_symlink_cycle_on_disk_is_refused(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(lb / "steps" / PKG)
    (lb / "steps" / PKG).symlink_to("loop")
    (lb / "steps" / "loop").symlink_to(PKG)
    err = generate_fails(lb, tmp_path, capsys)
    assert "symlink cycle" in err and PKG in err


def test_a_symlink_cycle_in_a_data_only_listing_is_refused(
    pinned_fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the listing (ls-tree.txt + symlinks.txt) says steps/<PKG> is a symlink loop
    snap = tmp_path / "snap"
    shutil.copytree(pinned_fixture, snap)
    listing = snap / "ls-tree.txt"
    kept = [ln for ln in listing.read_text().splitlines() if f"\tsteps/{PKG}/" not in ln]
    kept += [f"120000 blob {'0' * 40}\tsteps/{PKG}", f"120000 blob {'0' * 40}\tsteps/loop"]
    listing.write_text("\n".join(kept) + "\n")
    with (snap / "symlinks.txt").open("a") as fh:
        fh.write(f"steps/{PKG} -> loop\nsteps/loop -> {PKG}\n")
    err = generate_fails(snap, tmp_path, capsys)
    assert "symlink cycle" in err


# -- predicates ------------------------------------------------------------------------------


def test_a_3000_term_predicate_is_evaluated_without_recursion(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2,999 false comparisons, then a true one: `||` all the way, so the step survives
    terms = " || ".join(["ARCH == nope"] * 2999 + ["ARCH == x86"])
    line = insert_manifest_line(lb, f"improve: populate_device_nodes ( {terms} )")
    assert main(["plan", "--json", "--live-bootstrap", str(lb)]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["line"] == line)
    assert row["name"] == "populate_device_nodes" and row["predicate"].count("||") == 2999
    # and right-recursive without precedence: `x && (... || true)` with x false is false
    terms = " || ".join(["ARCH == x86"] * 2999)
    line = insert_manifest_line(lb, f"improve: populate_device_nodes ( ARCH == nope && {terms} )")
    assert main(["plan", "--json", "--live-bootstrap", str(lb)]) == 0
    assert line not in [r["line"] for r in json.loads(capsys.readouterr().out)]


def test_a_malformed_3000_term_predicate_names_its_line(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = " || ".join(["ARCH == x86"] * 3000)
    line = insert_manifest_line(lb, f"improve: populate_device_nodes ( {terms} ||")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/manifest:{line}:" in err and "unbalanced predicate" in err


# -- pins ------------------------------------------------------------------------------------

CHECKSUMS = f"steps/{PKG}/{PKG}.x86.checksums"


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (f"{SHA}  /../../../../etc/hostname", "is not a valid path"),
        (f"{SHA}  /usr/bin/../../etc/hostname", "is not a valid path"),
        (f"{SHA}  usr/bin/relative", "is not a valid path"),
        (f"{SHA}  //usr/bin/x", "is not a valid path"),
        (f"{'c' * 63}  /usr/bin/x", "64 hexadecimal digits, two spaces"),
        (f"{'g' * 64}  /usr/bin/x", "64 hexadecimal digits, two spaces"),
    ],
    ids=["dotdot", "inner-dotdot", "relative", "double-slash", "short-hash", "not-hex"],
)
def test_bad_pins_stop_generate_at_their_line(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pin: str, message: str
) -> None:
    pins = lb / CHECKSUMS
    n = len(pins.read_text().splitlines()) + 1
    with pins.open("a") as fh:
        fh.write(pin + "\n")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"{CHECKSUMS}:{n}:" in err and message in err


def test_verify_refuses_a_pin_outside_the_step_output(
    lb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the case that printed "ok" for the host's /etc/hostname: now an error before any check
    with (lb / CHECKSUMS).open("a") as fh:
        fh.write(f"{SHA}  /../../../../etc/hostname\n")
    argv = ["verify", "--against-live-bootstrap", "--live-bootstrap", str(lb), "--json"]
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2 and f"{CHECKSUMS}:" in " ".join(captured.err.split())
    assert '"ok"' not in captured.out


# -- generate's own writes --------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["../evil.nix", "/abs/evil.nix", "a/../../evil.nix", "a//b.nix"])
def test_generate_refuses_to_write_outside_steps(tmp_path: Path, rel: str) -> None:
    out = tmp_path / "steps"
    with pytest.raises(GenerateError, match="not a plain relative path below steps/"):
        write_atomically(out, {"default.nix": "[ ]\n", rel: "evil\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == []


KILL_AFTER = r"""
import os, signal, sys
import orchestrator.generate.write as g
calls = {"n": 0}
real_open = os.open
LB = sys.argv[sys.argv.index("--live-bootstrap") + 1]
def open_then_die(path, flags, mode=0o777, *a, **k):
    if os.fsdecode(path).startswith(LB):  # reading the input: count the writer's opens only
        return real_open(path, flags, mode, *a, **k)
    calls["n"] += 1
    if calls["n"] > int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup handler runs: a real kill
    return real_open(path, flags, mode, *a, **k)
g.os.open = open_then_die if sys.argv[2] == "staging" else real_open
real_rename = os.rename
def rename_then_die(src, dst):
    if os.path.basename(src).startswith(".steps-new-"):  # steps/ has been moved away already
        os.kill(os.getpid(), signal.SIGKILL)
    return real_rename(src, dst)
if sys.argv[2] == "swap":
    g.os.rename = rename_then_die
from orchestrator.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("when", ["staging", "swap"])
def test_a_killed_generate_is_cleaned_up_by_the_next_run(
    pinned_fixture: Path, tmp_path: Path, when: str
) -> None:
    out = tmp_path / "steps"
    argv = ["generate", "--live-bootstrap", str(pinned_fixture), "--output", str(out)]
    assert main(argv) == 0
    first = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "overrides").mkdir()
    (out / "overrides/NOTE.txt").write_text("maintainers' data\n")
    (out / "stale.nix").write_text("{ }\n")  # so that the rerun has something to write
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, "40", when, *argv], env=env, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".steps-")]
    assert leftovers, "the kill must have left something behind"
    if when == "swap":
        assert not out.exists()  # killed between the two renames
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *argv], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".steps-")]
    assert (out / "overrides/NOTE.txt").read_text() == "maintainers' data\n"
    again = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).as_posix().startswith("overrides/")
    }
    assert again == first


def test_verify_never_hashes_a_file_of_this_machine_through_a_link(tmp_path: Path) -> None:
    """A step output (a plain directory in the runner's layout stands in for the store path)
    whose pinned file is a symlink: followed as the chroot would, never out of the output."""
    import hashlib

    from orchestrator.verify.pins import TREE_DIR, _check_file

    host = Path("/etc/hostname") if Path("/etc/hostname").is_file() else Path("/etc/os-release")
    host_sha = hashlib.sha256(host.read_bytes()).hexdigest()
    tree = tmp_path / "out" / TREE_DIR
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/lib").mkdir()
    (tree / "usr/lib/real").write_bytes(b"chain's own file\n")
    real_sha = hashlib.sha256(b"chain's own file\n").hexdigest()
    (tree / "usr/bin/host").symlink_to(host)  # absolute: the chroot's /etc/..., not ours
    (tree / "usr/bin/up").symlink_to("../../../../../../" + str(host).lstrip("/"))
    (tree / "usr/bin/abs").symlink_to("/usr/lib/real")
    (tree / "usr/bin/rel").symlink_to("../lib/real")
    (tree / "usr/bin/loop").symlink_to("loop")
    out = str(tmp_path / "out")
    assert _check_file(out, "/usr/bin/host", host_sha) == (None, "missing")
    assert _check_file(out, "/usr/bin/up", host_sha) == (None, "missing")
    assert _check_file(out, "/usr/bin/abs", real_sha) == (real_sha, "ok")
    assert _check_file(out, "/usr/bin/rel", real_sha) == (real_sha, "ok")
    assert _check_file(out, "/usr/bin/loop", real_sha) == (None, "missing")
