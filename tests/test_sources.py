"""sources files in all three historical syntaxes, distfile dedup, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ParseError
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.sources import parse_sources
from orchestrator.upstream.tree import SourceTree

SHA = "a" * 64
SHB = "b" * 64


def test_typed_format() -> None:
    lines = parse_sources(
        f"f https://x/a-1.tar.gz {SHA}\n"
        f"file https://y/a-1.tar.gz {SHA}  \n"
        f"g https://git/r~v1 https://snap/r-v1.tar.gz {SHB} r-1.tar.gz\n"
        f"git https://git/g~abc _ {SHB.upper()} g-abc.tar.gz\n",
        "sources",
    )
    assert [(s.kind, s.filename, s.url) for s in lines] == [
        ("f", "a-1.tar.gz", "https://x/a-1.tar.gz"),
        ("f", "a-1.tar.gz", "https://y/a-1.tar.gz"),
        ("g", "r-1.tar.gz", "https://snap/r-v1.tar.gz"),
        ("g", "g-abc.tar.gz", None),
    ]
    assert lines[3].sha256 == SHB and (lines[3].git_repo, lines[3].git_ref) == (
        "https://git/g",
        "abc",
    )


def test_untyped_2025_and_plain_2024_formats() -> None:
    lines = parse_sources(
        f"https://x/a.tar.gz {SHA}\n"
        f"https://x/download?id=1 {SHA} named.tar.gz\n"
        f"git://host/repo.git~v2 _ {SHB} repo-v2.tar.gz\n",
        "sources",
    )
    assert [(s.kind, s.filename) for s in lines] == [
        ("f", "a.tar.gz"),
        ("f", "named.tar.gz"),
        ("g", "repo-v2.tar.gz"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("f https://x/a.tar.gz abc", "not 64 hexadecimal"),
        (f"f https://x/a.tar.gz {'g' * 64}", "not 64 hexadecimal"),
        (f"f https://x/a.tar.gz {SHA} ../evil", "not a valid store name"),
        (f"f https://x/a.tar.gz {SHA} a/b", "not a valid store name"),
        (f"f https://x/ {SHA}", "not a valid store name"),
        (f"f https://x/a.tar.gz {SHA} name extra", "found 4 fields"),
        (f"g https://git/r _ {SHA} r.tar.gz", "no '~<ref>'"),
        (f"g https://git/r~v _ {SHA}", "must name its file"),
        (f"f _ {SHA} x.tar.gz", "only allowed for git"),
    ],
)
def test_bad_sources_lines_name_file_and_line(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as err:
        parse_sources(f"f https://ok/ok.tar.gz {SHA}\n{line}\n", "steps/p/sources")
    assert (err.value.file, err.value.line) == ("steps/p/sources", 2)


def test_nul_in_a_file_name_is_refused() -> None:
    with pytest.raises(ParseError, match="not a valid store name"):
        parse_sources(f"f https://x/a {SHA} a\0b\n", "s")


def test_distfiles_are_deduplicated_with_all_alternative_urls(pinned_fixture: Path) -> None:
    chain = load_chain(SourceTree.open(pinned_fixture))
    names = [d.filename for d in chain.distfiles]
    assert len(names) == len(set(names))
    # an independent, naive reading of every sources file of a build in the manifest
    expected: set[str] = set()
    manifest = (pinned_fixture / "steps/manifest").read_text()
    pkgs = {line.split()[1] for line in manifest.splitlines() if line.startswith("build: ")}
    for pkg in pkgs:
        src = pinned_fixture / "steps" / pkg / "sources"
        for line in src.read_text().splitlines() if src.is_file() else []:
            tok = line.split()
            if not tok:
                continue
            is_git = tok[0] in ("g", "git") or tok[0].startswith("git://")
            tok = tok[1:] if tok[0] in ("f", "file", "g", "git") else tok
            tok = tok[1:] if is_git else tok
            expected.add(tok[2] if len(tok) > 2 else tok[0].rsplit("/", 1)[1])
    assert set(names) == expected
    nyacc = chain.distfile("nyacc-1.00.2-lb1.tar.gz")
    assert len(nyacc.urls) == 3 and nyacc.first_step == "mes-0.27.1" and nyacc.pre_network
    gnulib = [d for d in chain.distfiles if d.filename.startswith("gnulib-")]
    assert gnulib and all(d.kind == "g" and not d.urls for d in gnulib)


def test_pre_network_follows_the_first_network_improve(pinned_fixture: Path) -> None:
    chain = load_chain(SourceTree.open(pinned_fixture))
    assert chain.distfile("bash-5.2.15.tar.gz").pre_network is False  # built after get_network
    assert chain.distfile("mes-0.27.1.tar.gz").pre_network is True


def test_same_file_name_with_two_hashes_is_an_error(tmp_path: Path) -> None:
    from tests.support.trees import make_tree

    root = make_tree(
        tmp_path,
        manifest="build: a-1\nbuild: b-1\n",
        steps={
            "a-1": {"pass1.kaem": "", "sources": f"f https://x/shared.tar.gz {SHA}\n"},
            "b-1": {"pass1.kaem": "", "sources": f"f https://y/shared.tar.gz {SHB}\n"},
        },
    )
    with pytest.raises(ParseError, match="pins it as") as err:
        load_chain(SourceTree.open(root))
    assert err.value.file and err.value.file.endswith("steps/b-1/sources") and err.value.line == 1


@pytest.mark.parametrize("field", ["url", "repo", "ref"])
def test_a_value_nix_cannot_hold_is_refused_at_its_line(field: str) -> None:
    # settled when the chain is loaded, so the printer never meets it
    url, repo, ref = "https://x/a.tar.gz", "https://git/r", "v1"
    if field == "url":
        url = "https://x/\0a.tar.gz"
    elif field == "repo":
        repo = "https://git/\ud800r"
    else:
        ref = "v\0"
    line = f"g {repo}~{ref} {url} {SHA} a.tar.gz"
    with pytest.raises(ParseError, match="distfile 'a.tar.gz'") as err:
        parse_sources(f"f https://ok/ok.tar.gz {SHA}\n{line}\n", "steps/p/sources")
    assert (err.value.file, err.value.line) == ("steps/p/sources", 2)
