"""``distfiles seed``: real distfiles land exactly where the generated Nix expects them.

Debian bookworm's orig tarballs of bzip2 1.0.8 and m4 1.4.19 are byte-identical to
live-bootstrap's pinned distfiles; ``apt-get source --download-only`` fetches them (a session
fixture; skipped with the reason when apt cannot). The expected store paths come from ``nix
eval`` of the generated distfile derivations of the real flake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.filehash import sha256_file
from orchestrator.formats.storepath import fixed_output_path
from orchestrator.nixstr import nix_json, nix_string
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import REPO_ROOT, read_tree
from tests.support.cache import serve
from tests.test_nixlog import NIX_FLAGS

DEBIAN_SOURCES = ["bzip2", "m4"]  # orig tarballs identical to live-bootstrap's distfiles


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(why + " (.ci/setup adds deb-src and installs dpkg-dev)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def debian_distfiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """live-bootstrap file name -> the Debian orig tarball with those bytes."""
    if shutil.which("apt-get") is None:
        _unavailable("apt-get is not available")
    work = tmp_path_factory.mktemp("debian-src")
    proc = subprocess.run(
        ["apt-get", "source", "--download-only", *DEBIAN_SOURCES],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        _unavailable(f"apt-get source failed (no deb-src entry or no access): {proc.stderr[-500:]}")
    chain = load_chain(read_tree(None))
    pinned = {d.filename: d for d in chain.distfiles}
    out: dict[str, Path] = {}
    for orig in work.glob("*.orig.tar.*"):
        m = re.match(r"(?P<pkg>[^_]+)_(?P<ver>[^-]+)\.orig\.(?P<ext>tar\.\w+)$", orig.name)
        if not m:
            continue
        name = f"{m['pkg']}-{m['ver']}.{m['ext']}"
        if name in pinned:
            out[name] = orig
    assert len(out) == len(DEBIAN_SOURCES), (
        f"no pinned distfile matched {sorted(p.name for p in work.iterdir())}"
    )
    for name, orig in out.items():
        assert sha256_file(orig) == pinned[name].sha256, (
            f"Debian's {orig.name} is not live-bootstrap's {name}"
        )
    return out


def eval_out_paths(names: list[str], attr: str = "outPath") -> dict[str, str]:
    """OutPath (or drvPath) of the generated distfile derivations, by file name, from the
    real flake."""
    apply = (
        "l: let ds = builtins.concatLists (map (s: s.distfiles or [ ]) "
        '(l.chain "x86_64-linux").chainSteps); in '
        f"builtins.listToAttrs (map (d: {{ name = d.fileName; value = d.{attr}; }}) "
        f"(builtins.filter (d: builtins.elem d.fileName {nix_json(names)}) ds))"
    )
    proc = subprocess.run(
        ["nix", *NIX_FLAGS, "eval", "--json", f"{REPO_ROOT}#lib", "--apply", apply],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def valid(path: str) -> bool:
    return (
        subprocess.run(["nix-store", "--check-validity", path], capture_output=True).returncode == 0
    )


def forget(path: str) -> None:
    """Remove a store path so that the test sees it arrive (it must not be in use)."""
    if valid(path):
        proc = subprocess.run(["nix-store", "--delete", path], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remove {path} from the store to start clean: {proc.stderr[-300:]}")


def listing(tmp_path: Path, names: list[str]) -> Path:
    chain = load_chain(read_tree(None))
    rows = [
        {"filename": d.filename, "sha256": d.sha256, "urls": d.urls}
        for d in chain.distfiles
        if d.filename in names
    ]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(rows))
    return path


def test_seed_lands_at_the_evaluated_paths(tmp_path: Path, debian_distfiles, capsys) -> None:
    names = sorted(debian_distfiles)
    expected = eval_out_paths(names)
    assert sorted(expected) == names
    for path in expected.values():
        forget(path)
    seed_dir = tmp_path / "distfiles"
    seed_dir.mkdir()
    for name, orig in debian_distfiles.items():
        shutil.copyfile(orig, seed_dir / name)

    rc = main(
        ["distfiles", "seed", str(seed_dir), "--list", str(listing(tmp_path, names)), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {r["filename"]: (r["status"], r["detail"]) for r in report["results"]} == dict.fromkeys(
        names, ("present", "added")
    )
    for r in report["results"]:
        assert r["store_path"] == expected[r["filename"]]
        assert valid(r["store_path"])
        assert sha256_file(r["store_path"]) == r["sha256"]

    # Nix now takes the seeded files as the distfile derivations' outputs: realising their
    # derivations succeeds with no network and no fetch.
    for name, drv in eval_out_paths(names, "drvPath").items():
        realised = subprocess.run(
            ["nix-store", "--realise", drv, "--option", "substituters", ""],
            capture_output=True,
            text=True,
        )
        assert realised.returncode == 0, realised.stderr[-1000:]
        assert realised.stdout.strip() == expected[name]
        assert "downloading" not in realised.stderr
    chain = load_chain(read_tree(None))
    for name in names:
        d = chain.distfile(name)
        assert fixed_output_path(d.filename, d.sha256) == expected[name]

    # second time: already there
    rc = main(
        ["distfiles", "seed", str(seed_dir), "--list", str(listing(tmp_path, names)), "--json"]
    )
    again = json.loads(capsys.readouterr().out)
    assert rc == 0 and {r["detail"] for r in again["results"]} == {"already in the store"}


def test_corrupted_copy_is_mismatched_and_not_added(
    tmp_path: Path, debian_distfiles, capsys
) -> None:
    name = min(debian_distfiles)
    expected = eval_out_paths([name])[name]
    forget(expected)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    data = bytearray(debian_distfiles[name].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad_dir / name).write_bytes(bytes(data))
    rc = main(
        ["distfiles", "seed", str(bad_dir), "--list", str(listing(tmp_path, [name])), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    (r,) = report["results"]
    assert r["status"] == "mismatched"
    assert r["actual_sha256"] == hashlib.sha256(bytes(data)).hexdigest() != r["sha256"]
    assert not valid(expected), "a file with the wrong bytes never enters the store"

    rc = main(["distfiles", "seed", str(bad_dir), "--list", str(listing(tmp_path, [name]))])
    cap = capsys.readouterr()
    assert rc == 1 and "mismatched" in cap.out and "0 present" in cap.err


def test_missing_files_are_listed(tmp_path: Path, capsys) -> None:
    chain = load_chain(read_tree(None))
    first = chain.steps[0].step.attr_name
    want = {d for s in chain.steps[:1] for d in s.distfiles}
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["distfiles", "seed", str(empty), "--until", first, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {r["filename"] for r in report["results"]} == want
    for r in report["results"]:
        assert r["status"] == ("present" if valid(r["store_path"]) else "missing")


def test_path_scheme_matches_nix(tmp_path: Path) -> None:
    """fixed_output_path == nix-store --add-fixed == outPath of fetchers.nix's derivation."""
    fetchers = REPO_ROOT / "nix" / "fetchers.nix"
    for i, size in enumerate((0, 1, 5000)):
        data = os.urandom(size)
        name = f"random-{i}-{os.urandom(4).hex()}.tar.gz"
        f = tmp_path / name
        f.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        added = subprocess.run(
            ["nix-store", "--add-fixed", "sha256", str(f)], capture_output=True, text=True
        )
        assert added.returncode == 0, added.stderr
        spec = {"name": name, "sha256": sha, "urls": [f"https://example.org/{name}"]}
        expr = _fetch_distfile(fetchers, spec)
        evaluated = subprocess.run(
            ["nix", *NIX_FLAGS, "eval", "--raw", "--impure", "--expr", f"({expr}).outPath"],
            capture_output=True,
            text=True,
        )
        assert evaluated.returncode == 0, evaluated.stderr
        assert fixed_output_path(name, sha) == added.stdout.strip() == evaluated.stdout.strip()


def _fetch_distfile(fetchers: Path, spec: dict[str, object]) -> str:
    """nix/fetchers.nix's fetchDistfile applied to ``spec`` (passed as JSON: no Nix quoting)."""
    return f"((import (/. + {nix_string(str(fetchers))}) {{ }}).fetchDistfile {nix_json(spec)})"


@pytest.mark.parametrize("right", [True, False], ids=["right-hash", "wrong-hash"])
def test_a_distfile_with_other_bytes_than_its_pin_fails_to_build(
    tmp_path: Path, right: bool
) -> None:
    # the check Nix makes for every distfile (a fixed-output derivation): planted wrong bytes fail
    data = os.urandom(64)
    served = tmp_path / "served.tar.gz"
    served.write_bytes(data if right else data[::-1])
    name = f"fod-{os.urandom(4).hex()}.tar.gz"
    with serve(tmp_path) as server:  # 127.0.0.1 only, stopped on leaving
        url = f"{server.url}/served.tar.gz"
        spec = {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "urls": [url]}
        expr = _fetch_distfile(REPO_ROOT / "nix" / "fetchers.nix", spec)
        built = subprocess.run(
            ["nix", *NIX_FLAGS, "build", "--no-link", "--json", "--impure", "--expr", expr],
            capture_output=True,
            text=True,
        )
    if right:
        assert built.returncode == 0, built.stderr
        out = json.loads(built.stdout)[0]["outputs"]["out"]
        assert Path(out).read_bytes() == data
    else:
        assert built.returncode != 0 and "hash mismatch" in built.stderr, built.stderr
