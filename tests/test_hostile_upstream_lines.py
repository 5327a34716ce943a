"""Smaller upstream-input items: each line or entry Nix or upstream would refuse (or read
differently) is refused with its file and line; numbering stays linear."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import ParseError
from orchestrator.upstream.chain import _Repo
from orchestrator.upstream.manifest import parse_manifest
from orchestrator.upstream.sources import parse_sources
from tests.conftest import materialize

PKG = "mes-0.27.1"
SHA = "a" * 64
URL = "https://example.org/x-1.tar.gz"


@pytest.mark.parametrize(
    "line",
    [f"g ~v1 {URL} {SHA} x.tar", f"g https://r.example/x~ {URL} {SHA} x.tar", f"g ~ _ {SHA} x"],
)
def test_git_source_needs_repo_and_ref(line: str) -> None:
    with pytest.raises(ParseError, match="needs a repository and a ref") as exc:
        parse_sources(f"f {URL} {SHA}\n{line}\n", "steps/x/sources")
    assert exc.value.line == 2


@pytest.mark.parametrize("odd", ["\x0c", "\x85", "\u2028", "\x1c"])
def test_sources_lines_are_upstreams_lines(odd: str) -> None:
    # upstream (read / readlines) breaks lines at \n only: the odd character is inside line 1
    text = f"f {URL} {SHA}{odd}x.tar\nf {URL} {SHA}\n"
    with pytest.raises(ParseError) as exc:
        parse_sources(text, "steps/x/sources")
    assert exc.value.line == 1


def test_sources_fields_split_on_spaces_and_tabs() -> None:
    (line,) = parse_sources(f" f\t{URL}  {SHA}\tx.tar \r\n", "steps/x/sources")
    assert (line.url, line.filename, line.line) == (URL, "x.tar", 1)


def test_uninstall_needs_an_argument() -> None:
    with pytest.raises(ParseError, match="needs a package or file") as exc:
        parse_manifest("build: a\nuninstall: ( ARCH == x86 )\n")
    assert exc.value.line == 2


def test_package_numbering_is_linear_and_prefix_counting() -> None:
    repo = _Repo()
    for name in ("gcc-4.7.4_0.tar.bz2", "gcc-4.7.4_1.tar.bz2", "gcc-10_0.tar.bz2", "g_0.tar.bz2"):
        repo.add(name)
    assert repo.count_prefixed("gcc-4.7.4") == 2
    assert repo.count_prefixed("gcc") == 3  # ls -1 "gcc"* counts every gcc-*
    assert repo.count_prefixed("g") == 4
    assert repo.count_prefixed("h") == 0
    started = time.monotonic()
    big = _Repo()
    for i in range(30_000):
        n = f"pkg-{i % 100}"
        big.add(f"{n}_{big.count_prefixed(n)}.tar.bz2")
    assert big.count_prefixed("pkg-7") == 300 + 300 * 10  # pkg-7 and pkg-70..79
    assert time.monotonic() - started < 5  # the quadratic count took about a minute


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, pinned_fixture: Path) -> Path:
    return materialize(pinned_fixture, tmp_path_factory.mktemp("pristine") / "lb")


@pytest.fixture
def lb(pristine: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lb"
    shutil.copytree(pristine, root, symlinks=True)
    return root


def generate_fails(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out" / "steps"
    rc = main(["generate", "--live-bootstrap", str(root), "--output", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "Traceback" not in err, err
    assert not out.parent.exists()
    return err


def test_one_url_pinned_twice_with_different_hashes(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = lb / "steps" / PKG / "sources"
    first = sources.read_text().split("\n")[0].split()
    lines = sources.read_text().rstrip("\n").split("\n")
    lines.append(f"f {first[1]} {SHA} another-name.tar.gz")
    sources.write_text("\n".join(lines) + "\n")
    err = generate_fails(lb, tmp_path, capsys)
    assert f"steps/{PKG}/sources:{len(lines)}" in err and "pins the same URL" in err


def test_a_kaem_pass_script_that_is_a_directory(
    lb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = lb / "steps" / PKG / "pass1.kaem"
    script.unlink()
    script.mkdir()
    err = generate_fails(lb, tmp_path, capsys)
    assert "pass1.kaem, which is missing or not a file" in err
