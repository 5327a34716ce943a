"""The one resolver of a path inside a root (formats/inroot.py), on links given as data."""

from __future__ import annotations

import pytest

from orchestrator.formats.inroot import (
    MAX_LINKS,
    LinkLoop,
    OutsideRoot,
    plain_parts,
    resolve_in_root,
)

LINKS = {
    "usr/bin/cc": "gcc",
    "usr/bin/abs": "/usr/lib/real",
    "usr/bin/up": "../lib/real",
    "usr/bin/climb": "../../../usr/lib/real",
    "lib": "usr/lib",
    "loop": "loop",
}


def resolve(path: str, **kw: object) -> str:
    return resolve_in_root(path, LINKS.get, **kw)  # type: ignore[arg-type]


def test_links_followed_inside_the_root() -> None:
    assert resolve("usr/bin/cc") == "usr/bin/gcc"
    assert resolve("usr/bin/up") == "usr/lib/real"
    assert resolve("lib/real") == "usr/lib/real"
    assert resolve("usr/bin/cc", follow=False) == "usr/bin/cc"
    assert resolve("") == ""


def test_dotdot_above_the_root_is_refused_never_clamped() -> None:
    with pytest.raises(OutsideRoot):
        resolve("usr/bin/climb")
    with pytest.raises(OutsideRoot):
        resolve("usr/bin/climb", absolute="chroot")
    with pytest.raises(OutsideRoot):
        resolve("../etc/passwd")


def test_absolute_targets_refused_or_read_from_the_root() -> None:
    with pytest.raises(OutsideRoot) as exc:
        resolve("usr/bin/abs")
    assert (exc.value.link, exc.value.target) == ("usr/bin/abs", "/usr/lib/real")
    assert resolve("usr/bin/abs", absolute="chroot") == "usr/lib/real"


def test_a_loop_is_refused() -> None:
    with pytest.raises(LinkLoop):
        resolve("loop")
    chain = {f"l{i}": f"l{i + 1}" for i in range(MAX_LINKS + 1)}
    with pytest.raises(LinkLoop):
        resolve_in_root("l0", chain.get)
    assert resolve_in_root("l1", chain.get) == f"l{MAX_LINKS + 1}"  # exactly MAX_LINKS links


def test_any_depth_without_recursion() -> None:
    deep = "/".join(["d"] * 50_000)
    assert resolve_in_root(deep, lambda _: None) == deep


@pytest.mark.parametrize("bad", ["a//b", "a/./b", "a/../b", "/a", "a/", ".", "..", "a\0b"])
def test_plain_parts_refuses(bad: str) -> None:
    assert plain_parts(bad) is None


def test_plain_parts_accepts() -> None:
    assert plain_parts("a/b.c/..d") == ["a", "b.c", "..d"]
    assert plain_parts("") == []
