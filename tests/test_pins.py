"""``verify --against-live-bootstrap``: step outputs against live-bootstrap's pins.

A synthetic live-bootstrap tree (kaem-era step with an installed-files checksums file, the first
bash, a bash-era step with a package pin in SHA256SUMS.pkgs, an improve step) and a stand-in
flake whose step derivations, built for real in the sandbox, lay their files out as the runner
does: ``<out>/tree/<path in the root filesystem>``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from orchestrator.build.targets import installable
from orchestrator.cli import main
from orchestrator.verify.pins import TREE_DIR
from tests.conftest import flake_package_names, pinned_source_or_skip
from tests.support.trees import make_tree
from tests.test_nixlog import NIX_FLAGS, write_flake

FOO_BIN = b"foo-bin\n"
FOO_LIB = b"foo-lib\n"
TARBALL = b"pretend tarball\n"
MANIFEST = "build: foo-1.0\nbuild: bash-5.2\nbuild: bar-2.0\nimprove: tidy\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path, *, lib_pin: str, extra_pin: str = "", pkg_pin: str | None = None) -> Path:
    checksums = f"{sha(FOO_BIN)}  /usr/bin/foo\n{lib_pin}  /usr/lib/libfoo.a\n{extra_pin}"
    return make_tree(
        root,
        manifest=MANIFEST,
        steps={
            "foo-1.0": {"pass1.kaem": "", "foo-1.0.x86.checksums": checksums},
            "bash-5.2": {"pass1.kaem": ""},
            "bar-2.0": {"pass1.sh": ""},
        },
        pkgs=f"{pkg_pin or sha(TARBALL)}  bar-2.0_0.tar.bz2\n",
        extra={"steps/improve/tidy.sh": ""},
    )


def stand_in(root: Path) -> str:
    t = f"$out/{TREE_DIR}"
    return write_flake(
        root,
        [
            (
                "foo-1.0-pass1",
                (
                    f"mkdir -p {t}/usr/bin {t}/usr/lib; printf 'foo-bin\\n' > {t}/usr/bin/foo; "
                    f"printf 'foo-lib\\n' > {t}/usr/lib/libfoo.a; : > $out/deletions"
                ),
            ),
            ("bash-5.2-pass1", f"mkdir -p {t}/usr/bin; echo bash > {t}/usr/bin/bash"),
            (
                "bar-2.0-pass1",
                (
                    f"mkdir -p {t}/external/repo; printf 'pretend tarball\\n' > "
                    f"{t}/external/repo/bar-2.0_0.tar.bz2"
                ),
            ),
            ("improve-tidy-1", f"mkdir -p {t}"),
        ],
    )


def verify(capsys, flake: str, lb: Path, *extra: str) -> tuple[int, dict]:
    rc = main(
        [
            "verify",
            "--against-live-bootstrap",
            "--flake",
            flake,
            "--live-bootstrap",
            str(lb),
            "--json",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    return rc, json.loads(out)


def build(flake: str, attr: str) -> None:
    proc = subprocess.run(
        ["nix", *NIX_FLAGS, "build", "--no-link", installable(attr, flake)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture
def flake(tmp_path: Path) -> str:
    return stand_in(tmp_path / "flake")


def test_all_pins_match(tmp_path: Path, flake: str, capsys) -> None:
    lb = tree(tmp_path / "lb", lib_pin=sha(FOO_LIB))
    rc, report = verify(capsys, flake, lb)
    assert rc == 0
    assert {c["status"] for c in report["checks"] if c["kind"] != "none"} == {"not-built"}
    rc = main(
        [
            "verify",
            "--against-live-bootstrap",
            "--flake",
            flake,
            "--live-bootstrap",
            str(lb),
            "--strict",
        ]
    )
    assert rc == 2, "--strict: nothing built is inconclusive"
    capsys.readouterr()

    build(flake, "improve-tidy-1")
    rc, report = verify(capsys, flake, lb)
    assert rc == 0
    rows = [(c["step"], c["kind"], c["file"], c["status"]) for c in report["checks"]]
    assert rows == [
        ("foo-1.0-pass1", "installed", "/usr/bin/foo", "ok"),
        ("foo-1.0-pass1", "installed", "/usr/lib/libfoo.a", "ok"),
        ("bash-5.2-pass1", "none", None, "no-pins"),
        ("bar-2.0-pass1", "package", "/external/repo/bar-2.0_0.tar.bz2", "ok"),
        ("improve-tidy-1", "none", None, "no-pins"),
    ]
    pkg = report["checks"][3]
    assert pkg["expected"] == pkg["actual"] == sha(TARBALL)
    assert pkg["pinned_in"] == "steps/SHA256SUMS.pkgs"
    assert report["checks"][0]["pinned_in"] == "steps/foo-1.0/foo-1.0.x86.checksums:1"

    # up to a step: only that prefix
    rc, report = verify(capsys, flake, lb, "foo-1.0-pass1")
    assert {c["step"] for c in report["checks"]} == {"foo-1.0-pass1"}


def test_mismatch_and_missing_fail(tmp_path: Path, flake: str, capsys) -> None:
    build(flake, "improve-tidy-1")
    wrong = sha(b"something else\n")
    lb = tree(
        tmp_path / "lb",
        lib_pin=wrong,
        extra_pin=f"{sha(b'x')}  /usr/bin/foo-extra\n",
        pkg_pin=sha(b"another tarball"),
    )
    rc, report = verify(capsys, flake, lb)
    assert rc == 1
    by_file = {c["file"]: c for c in report["checks"] if c["file"]}
    lib = by_file["/usr/lib/libfoo.a"]
    assert (lib["status"], lib["expected"], lib["actual"]) == ("mismatch", wrong, sha(FOO_LIB))
    assert by_file["/usr/bin/foo-extra"]["status"] == "missing"
    assert by_file["/usr/bin/foo"]["status"] == "ok"
    assert by_file["/external/repo/bar-2.0_0.tar.bz2"]["status"] == "mismatch"
    assert report["counts"] == {"mismatch": 2, "missing": 1, "no-pins": 2, "ok": 1}

    rc = main(["verify", "--against-live-bootstrap", "--flake", flake, "--live-bootstrap", str(lb)])
    out = capsys.readouterr().out
    assert rc == 1
    assert wrong in out and sha(FOO_LIB) in out, "a mismatch shows both hashes in full"


def test_unknown_target(tmp_path: Path, flake: str, capsys) -> None:
    lb = tree(tmp_path / "lb", lib_pin=sha(FOO_LIB))
    rc = main(["verify", "--against-live-bootstrap", "nope-1-pass1", "--live-bootstrap", str(lb)])
    assert rc == 2 and "not a step of the chain" in capsys.readouterr().err


def test_runner_synthetic_outputs(tmp_path: Path) -> None:
    """The runner's real step outputs (nix/runner.nix over ns-run): learn the package hashes with
    UPDATE_CHECKSUMS, build again with them pinned, every pin holds; a changed pin is reported."""
    import os

    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.tree import SourceTree
    from orchestrator.verify.pins import REPO_DIR, verify
    from tests.runner_support.synth import Synth, missing_tools, write_tree

    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the runner's synthetic chain needs {', '.join(missing)}")
        pytest.skip(f"the runner's synthetic chain needs {', '.join(missing)}")
    s = Synth(tmp_path / "synth")
    s.prepare(None, update_checksums=True)
    learned = {}
    for attr in s.attrs:
        repo = s.out(attr) / TREE_DIR / REPO_DIR.lstrip("/")
        if repo.is_dir():
            learned.update({f.name: sha(f.read_bytes()) for f in repo.iterdir()})
    assert set(learned) == {"delta-1.0_0.tar.bz2", "delta-1.0_1.tar.bz2", "epsilon-1.0_0.tar.bz2"}

    s.prepare(learned)  # the runner checks these pins itself while building
    outputs = {a: str(s.out(a)) for a in s.attrs}
    chain = load_chain(SourceTree.open(s.tree))
    report = verify(chain, "live-bootstrap", outputs)
    checked = [(c.step, c.kind, c.file, c.status) for c in report.checks if c.kind != "none"]
    assert checked == [
        ("alpha-1.0-pass1", "installed", "/usr/bin/alpha-tool", "ok"),
        ("delta-1.0-pass1", "package", "/external/repo/delta-1.0_0.tar.bz2", "ok"),
        ("delta-1.0-pass2", "package", "/external/repo/delta-1.0_1.tar.bz2", "ok"),
        ("epsilon-1.0-pass1", "package", "/external/repo/epsilon-1.0_0.tar.bz2", "ok"),
    ]
    assert report.exit_code() == 0

    # the same outputs against a tree whose pin moved: that package is a mismatch
    moved = tmp_path / "moved"
    write_tree(moved, {**learned, "delta-1.0_1.tar.bz2": sha(b"not it")})
    tree = SourceTree.open(moved)
    report = verify(load_chain(tree), "live-bootstrap", outputs)
    bad = [c for c in report.checks if c.status != "ok" and c.kind != "none"]
    assert [(c.step, c.status, c.actual) for c in bad] == [
        ("delta-1.0-pass2", "mismatch", learned["delta-1.0_1.tar.bz2"])
    ]
    assert report.exit_code() == 1


def test_real_chain_first_step(capsys) -> None:
    """The real chain: build its first step from the seed with `build`, then its installed files
    match live-bootstrap's own checksums file."""
    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.locate import read_tree

    first = load_chain(read_tree(None)).steps[0]
    attr = first.step.attr_name
    names = flake_package_names()
    if names is None or attr not in names:
        pytest.skip(f"the flake does not expose the chain's steps yet ({attr})")
    assert first.checksums_file, "the first step is a kaem-era build with a checksums file"
    # Nix fetches the input lazily: evaluation succeeds without it, the build needs it
    pinned_source_or_skip()
    rc = main(["build", attr, "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    built = json.loads(out.out)
    rc = main(["verify", "--against-live-bootstrap", attr, "--json", "--no-results"])
    report = json.loads(capsys.readouterr().out)
    mine = [c for c in report["checks"] if c["step"] == attr]
    assert rc == 0 and mine and {c["status"] for c in mine} == {"ok"}
    assert {c["output"] for c in mine} == {built["outputs"][0]}
