"""A cache's narinfo is held to Nix's grammar: what Nix refuses, the parser refuses (a ParseError
naming the line), and every real cache.nixos.org narinfo still parses."""

from __future__ import annotations

import pytest

from orchestrator.errors import ParseError
from orchestrator.formats.narinfo import parse_narinfo
from tests.test_narinfo import fixtures

H = "0" * 32
GOOD = {
    "StorePath": f"/nix/store/{H}-x",
    "URL": "nar/x.nar",
    "Compression": "none",
    "NarHash": "sha256:" + "0" * 52,
    "NarSize": "8",
    "References": f"{H}-x {'1' * 32}-dep",
    "Deriver": f"{'2' * 32}-x.drv",
}


def text(**changes: str) -> str:
    return "".join(f"{k}: {v}\n" for k, v in {**GOOD, **changes}.items())


def test_the_good_one_parses() -> None:
    info = parse_narinfo(text())
    assert info.reference_paths() == [f"/nix/store/{H}-x", f"/nix/store/{'1' * 32}-dep"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NarSize", "\u0661\u0662"),  # Arabic-Indic digits: int() reads them, Nix does not
        ("NarSize", "\u00b2"),
        ("NarSize", "+8"),
        ("FileSize", "1_000"),
        ("StorePath", f"/nix/store/{H}-x/.."),
        ("StorePath", f"/nix/store/../{H}-x"),
        ("StorePath", f"/nix/store/{H}-.."),
        ("StorePath", f"/nix/store/{H}-a b"),
        ("StorePath", f"nix/store/{H}-x"),
        ("References", f"{H}-x ../../etc"),
        ("References", f"{H}-.."),
        ("References", f"{H}-x {H}"),
        ("Deriver", "../x.drv"),
    ],
)
def test_what_nix_refuses_is_refused(key: str, value: str) -> None:
    body = text(**{key: value})
    line = list(GOOD).index(key) + 1 if key in GOOD else len(GOOD) + 1
    with pytest.raises(ParseError) as exc:
        parse_narinfo(body, source="hostile.narinfo")
    assert f"hostile.narinfo:{line}" in str(exc.value) or exc.value.line == line


def test_real_narinfos_still_parse() -> None:
    for f in fixtures():
        parse_narinfo(f.read_text(), source=str(f))
