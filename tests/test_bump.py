"""``bump``: overrides of real packages with tarballs the tests create, prefetched by the real
Nix tools, the regenerated step evaluated by real ``nix eval``; failures leave the tree as it was.

Every test works on a copy of the repository (steps/ regenerated there first), never on the
working tree.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.maintain.bump import plan_distfiles, prefetch_tool
from orchestrator.nixstr import nix_string
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.tree import SourceTree
from tests.conftest import REPO, run_nix

PKG = "gcc-15.2.0"
STEP = "gcc-15.2.0-pass1"
UPSTREAM_FILE = "gcc-15.2.0.tar.xz"


def tree_digest(root: Path) -> str:
    """Every path, mode, and file content under root."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + oct(p.lstat().st_mode).encode())
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def make_tarball(path: Path, top: str, text: str) -> Path:
    src = path.parent / f"{top}-src"
    (src / top).mkdir(parents=True)
    (src / top / "VERSION").write_text(text)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / top, arcname=top)
    return path


def copy_repo(dest: Path) -> Path:
    """What bump and update touch, and what evaluating the flake needs: the flake, nix/, steps/,
    stdenv-bridge/."""
    dest.mkdir(parents=True)
    for name in ("flake.nix", "flake.lock"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("nix", "steps", "stdenv-bridge"):
        shutil.copytree(REPO / name, dest / name, symlinks=True)
    return dest


@pytest.fixture
def setup(tmp_path: Path, pinned_fixture: Path, nix: str) -> dict[str, Path]:
    """A repository copy generated from the pinned fixture, except that gcc's sources point at
    a file:// tarball made here (so that URL derivation and prefetching work offline)."""
    src = tmp_path / "mirror"
    src.mkdir()
    old_tar = make_tarball(src / "gcc-15.2.0.tar.gz", "gcc-15.2.0", "15.2.0\n")
    new_tar = make_tarball(src / "gcc-16.1.0.tar.gz", "gcc-16.1.0", "16.1.0\n")
    lb = shutil.copytree(pinned_fixture, tmp_path / "lb")
    sources = lb / "steps" / PKG / "sources"
    lines = sources.read_text().splitlines()
    assert lines[0].split()[1].endswith("/" + UPSTREAM_FILE)
    lines[0] = f"f {old_tar.as_uri()} {hashlib.sha256(old_tar.read_bytes()).hexdigest()}"
    sources.write_text("\n".join(lines) + "\n")
    repo = copy_repo(tmp_path / "repo")
    assert main(["generate", "--live-bootstrap", str(lb), "--output", str(repo / "steps")]) == 0
    return {
        "repo": repo,
        "steps": repo / "steps",
        "lb": lb,
        "old_tar": old_tar,
        "new_tar": new_tar,
        "src": src,
    }


def distfile_drvs(repo: Path, step: str) -> list[dict[str, str]]:
    nix = repo / "nix"
    expr = (
        f"let f = import (/. + {nix_string(str(nix / 'fetchers.nix'))}) {{ }}; "
        f"c = import (/. + {nix_string(str(nix / 'steps.nix'))}) "
        f"{{ steps = /. + {nix_string(str(repo / 'steps'))}; inherit (f) fetchDistfile; }}; "
        f"s = builtins.head (builtins.filter (x: x.attrName == {nix_string(step)}) c.chainSteps); "
        "in map (d: { name = d.fileName; drv = d.drvPath; out = d.outPath; }) s.distfiles"
    )
    return json.loads(run_nix("eval", "--json", "--impure", "--expr", expr).stdout)


def test_derived_urls_on_real_data(pinned_fixture: Path) -> None:
    chain = load_chain(SourceTree.open(pinned_fixture))
    upstream_url = next(u for u in chain.distfile(UPSTREAM_FILE).urls)
    upstream_version, replaces, new = plan_distfiles(chain, PKG, "16.1.0", [])
    assert upstream_version == "15.2.0"
    # only the versioned file is replaced; the unversioned one gcc also needs stays upstream's
    assert replaces == [UPSTREAM_FILE]
    assert new == [("gcc-16.1.0.tar.xz", [upstream_url.replace("15.2.0", "16.1.0")])]
    assert new[0][1] == ["https://mirrors.kernel.org/gnu/gcc/gcc-16.1.0/gcc-16.1.0.tar.xz"]


def test_bump_end_to_end(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    steps, repo = setup["steps"], setup["repo"]
    before_files = {p: p.read_bytes() for p in steps.rglob("*") if p.is_file()}
    before = distfile_drvs(repo, STEP)
    assert next(d["name"] for d in before) == "gcc-15.2.0.tar.gz"

    assert main(["bump", PKG, "--version", "16.1.0", "--steps", str(steps)]) == 0
    captured = capsys.readouterr()
    tool = prefetch_tool()
    assert f"prefetched gcc-16.1.0.tar.gz with {tool}" in captured.err
    if tool != "nix-prefetch":
        assert f"nix-prefetch is not installed: prefetching with {tool}" in captured.err
    assert '+    name = "gcc-16.1.0.tar.gz";' in captured.out  # the diff is shown
    assert '+    distfiles."gcc-16.1.0.tar.gz"' in captured.out

    # the override, as data
    override = json.loads((steps / "overrides" / f"{PKG}.json").read_text())
    want_sha = hashlib.sha256(setup["new_tar"].read_bytes()).hexdigest()
    assert override["package"] == PKG and override["version"] == "16.1.0"
    assert override["upstream_version"] == "15.2.0"
    assert override["replaces"] == ["gcc-15.2.0.tar.gz"]
    assert override["distfiles"] == [
        {"filename": "gcc-16.1.0.tar.gz", "sha256": want_sha, "urls": [setup["new_tar"].as_uri()]}
    ]
    assert override["prefetched_with"] == tool

    # the regenerated step: new distfile, no upstream package pin, the override marker
    text = (steps / f"{STEP}.nix").read_text()
    assert 'distfiles."gcc-16.1.0.tar.gz"' in text
    assert f"sha256 = {nix_string(want_sha)};" in (steps / "distfiles.nix").read_text()
    assert "sha256 = null;" in text and 'packageCheck = "no upstream pin";' in text
    assert 'version = "16.1.0";' in text and 'upstreamVersion = "15.2.0";' in text
    changed = {p for p in steps.rglob("*") if p.is_file() and before_files.get(p) != p.read_bytes()}
    assert changed == {
        steps / f"{STEP}.nix",
        steps / "distfiles.nix",
        steps / "overrides" / f"{PKG}.json",
    }

    # real evaluation: the derivation changed, and its fixed output is exactly what was prefetched
    after = distfile_drvs(repo, STEP)
    assert after[0]["name"] == "gcc-16.1.0.tar.gz"
    assert after[0]["drv"] != before[0]["drv"]
    assert Path(after[0]["out"]).is_file()
    assert hashlib.sha256(Path(after[0]["out"]).read_bytes()).hexdigest() == want_sha
    assert after[1:] == before[1:]  # the unversioned distfile is untouched

    # plan marks it; --list shows it; generate applies it (no drift)
    assert main(["plan", "--steps", str(steps), "--json"]) == 0
    rows = {r["attr"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[STEP]["override"] == "16.1.0" and rows[STEP]["package_check"] == "no upstream pin"
    assert rows["gcc-10.5.0-pass1"]["override"] is None
    assert rows["gcc-10.5.0-pass1"]["package_check"] == "SHA256SUMS.pkgs"
    assert main(["bump", "--list", "--json", "--steps", str(steps)]) == 0
    assert [o["package"] for o in json.loads(capsys.readouterr().out)] == [PKG]
    assert (
        main(["generate", "--check", "--live-bootstrap", str(setup["lb"]), "--output", str(steps)])
        == 0
    )


def test_round_trip_bump_then_drop_is_byte_identical(setup: dict[str, Path]) -> None:
    steps = setup["steps"]
    digest = tree_digest(steps)
    assert main(["bump", STEP, "--version", "16.1.0", "--steps", str(steps)]) == 0
    assert tree_digest(steps) != digest
    assert main(["bump", "--drop", PKG, "--steps", str(steps)]) == 0
    assert tree_digest(steps) == digest
    # no package override is left (steps/overrides/runner/ is the runner's step data, not bump's)
    assert not list((steps / "overrides").glob("*.json"))


def test_explicit_url_and_expected_hash(setup: dict[str, Path], capsys) -> None:
    steps, new_tar = setup["steps"], setup["new_tar"]
    sha = hashlib.sha256(new_tar.read_bytes()).hexdigest()
    code = main(
        [
            "bump",
            PKG,
            "--version",
            "16.1.0",
            "--url",
            new_tar.as_uri(),
            "--sha256",
            f"sha256:{sha}",
            "--steps",
            str(steps),
        ]
    )
    assert code == 0, capsys.readouterr().err
    override = json.loads((steps / "overrides" / f"{PKG}.json").read_text())
    assert override["distfiles"][0]["sha256"] == sha


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404, "Not Found")

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def http_404() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_404_changes_nothing(setup: dict[str, Path], http_404: str, capsys) -> None:
    repo = setup["repo"]
    digest = tree_digest(repo)
    code = main(
        [
            "bump",
            PKG,
            "--version",
            "16.1.0",
            "--url",
            f"{http_404}/gcc-16.1.0.tar.gz",
            "--steps",
            str(setup["steps"]),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "prefetching" in err and "404" in err
    assert tree_digest(repo) == digest


def test_missing_file_url_changes_nothing(setup: dict[str, Path], capsys) -> None:
    repo = setup["repo"]
    digest = tree_digest(repo)
    missing = (setup["src"] / "gcc-16.2.0.tar.gz").as_uri()
    code = main(
        ["bump", PKG, "--version", "16.2.0", "--url", missing, "--steps", str(setup["steps"])]
    )
    assert code != 0 and "prefetching" in capsys.readouterr().err
    assert tree_digest(repo) == digest


def test_wrong_hash_changes_nothing(setup: dict[str, Path], capsys) -> None:
    repo = setup["repo"]
    digest = tree_digest(repo)
    wrong = hashlib.sha256(b"not the tarball").hexdigest()
    code = main(
        ["bump", PKG, "--version", "16.1.0", "--sha256", wrong, "--steps", str(setup["steps"])]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "hash mismatch" in err.lower() or ("hash" in err and "--sha256" in err)
    assert tree_digest(repo) == digest


def test_version_matching_no_url(setup: dict[str, Path], capsys) -> None:
    repo = setup["repo"]
    digest = tree_digest(repo)
    # flex 2.5.11 is fetched as a commit snapshot: its version is in no URL
    assert main(["bump", "flex-2.5.11", "--version", "2.5.12", "--steps", str(setup["steps"])]) == 2
    assert "version string '2.5.11' (from flex-2.5.11) matches no URL" in capsys.readouterr().err
    # --url that does not carry the version either
    code = main(
        [
            "bump",
            PKG,
            "--version",
            "16.1.0",
            "--url",
            setup["old_tar"].as_uri(),
            "--steps",
            str(setup["steps"]),
        ]
    )
    assert code == 2 and "matches none of the URLs given" in capsys.readouterr().err
    assert tree_digest(repo) == digest


def test_unknown_step(setup: dict[str, Path], capsys) -> None:
    digest = tree_digest(setup["repo"])
    assert main(["bump", "gcc-15.2.1", "--version", "16.1.0", "--steps", str(setup["steps"])]) == 2
    err = capsys.readouterr().err
    assert "unknown step 'gcc-15.2.1'" in err and "did you mean: gcc-15.2.0" in err
    assert main(["bump", "--drop", PKG, "--steps", str(setup["steps"])]) == 2
    assert "no override for 'gcc-15.2.0'" in capsys.readouterr().err
    assert tree_digest(setup["repo"]) == digest


def test_bump_that_would_not_generate_is_refused_before_fetching(
    setup: dict[str, Path], capsys
) -> None:
    digest = tree_digest(setup["repo"])
    # '%' cannot appear in a store path name: the fetch derivation could never be instantiated
    bad = (setup["src"] / "gcc-16.1.0%2Bfix.tar.gz").as_uri()
    assert (
        main(["bump", PKG, "--version", "16.1.0", "--url", bad, "--steps", str(setup["steps"])])
        == 2
    )
    err = capsys.readouterr().err
    assert "bump refused, generation would fail" in err and "prefetched" not in err
    assert tree_digest(setup["repo"]) == digest


def test_stale_override_is_refused_by_generate(setup: dict[str, Path], capsys) -> None:
    steps = setup["steps"]
    assert main(["bump", PKG, "--version", "16.1.0", "--steps", str(steps)]) == 0
    capsys.readouterr()
    # upstream moved on: its gcc file is no longer the one the override replaces
    sources = setup["lb"] / "steps" / PKG / "sources"
    sources.write_text(sources.read_text().replace("gcc-15.2.0.tar.gz", "gcc-15.2.0-r1.tar.gz"))
    digest = tree_digest(steps)
    assert main(["generate", "--live-bootstrap", str(setup["lb"]), "--output", str(steps)]) == 2
    err = capsys.readouterr().err
    assert "stale override" in err and f"bump --drop {PKG}" in err
    assert tree_digest(steps) == digest


@pytest.mark.parametrize("tool", ["nix-prefetch-url", "nix store prefetch-file"])
def test_fallback_prefetchers_agree(tool: str, tmp_path: Path, nix: str) -> None:
    """Both fallbacks this machine has compute the same sha256 as Python, and check --sha256."""
    from orchestrator.errors import NixError
    from orchestrator.maintain.bump import prefetch

    tar = make_tarball(tmp_path / f"pkg-{tool.rsplit(maxsplit=1)[-1]}-1.0.tar.gz", "pkg-1.0", tool)
    want = hashlib.sha256(tar.read_bytes()).hexdigest()
    assert prefetch(tar.as_uri(), tar.name, None, tool) == want
    assert prefetch(tar.as_uri(), tar.name, want, tool) == want
    with pytest.raises(NixError, match="prefetching"):
        prefetch(tar.as_uri(), tar.name, hashlib.sha256(b"other").hexdigest(), tool)
