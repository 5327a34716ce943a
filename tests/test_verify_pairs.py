"""Cross-bootstrap comparison (``--pair``/``--pairs``): two real builds of the same derivation
over two different dependencies (so different store hashes everywhere) are
``equal-modulo-store-paths``; a one-byte change ``differs`` and ``--diff`` points at it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.nar import nar_hash
from orchestrator.formats.narinfo import parse_narinfo
from orchestrator.verify.pairs import HashRewriter, Pair, load_pairs, pair_mapping
from tests.support.cache import World, narinfo_file, needs_nix, serve

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("pairs-world"), n_many=1)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["verify", "--against-hydra", "--no-results", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@needs_nix
def test_equal_modulo_store_paths_against_the_cache(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # theirs (tool_b) exists only in the cache: its signed NarHash is the reference
    assert not Path(world.tool_b).exists()
    with serve(world.cache) as server:
        code, report = run(
            capsys,
            "--cache",
            server.url,
            "--trusted-key",
            world.public,
            "--pair",
            f"{world.tool_a}={world.tool_b}",
        )
    assert code == 0
    (r,) = report["results"]
    assert r["kind"] == "pair" and r["status"] == "equal-modulo-store-paths", r
    assert r["theirs"] == world.tool_b
    assert r["rewrites"] >= 4  # README (2), the script, the symlink: self and dep hashes
    assert r["local_nar_hash"] == r["remote_nar_hash"]
    assert report["summary"]["equal_modulo_store_paths"] == 1


@needs_nix
def test_without_rewriting_the_builds_really_differ(world: World) -> None:
    """The equality above is not vacuous: the raw NAR of ours is not theirs."""
    theirs = parse_narinfo(narinfo_file(world.cache, world.tool_b).read_text())
    ours = nar_hash(world.tool_a)
    assert ours.nar_size == theirs.nar_size  # equal-length hashes: same size...
    assert ours.nar_hash != theirs.nar_hash  # ...different bytes
    assert world.dep_a != world.dep_b


@needs_nix
def test_pair_needs_a_trusted_signature(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(world.cache) as server:
        code, report = run(
            capsys, "--cache", server.url, "--pair", f"{world.tool_a}={world.tool_b}"
        )
    assert code == 2
    assert report["results"][0]["status"] == "untrusted"


@needs_nix
def test_one_byte_change_differs_and_diff_finds_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run(
        capsys,
        "--cache",
        world.cache.as_uri(),
        "--trusted-key",
        world.public,
        "--diff",
        "--diff-tool",
        "builtin",
        "--pair",
        f"{world.tool_a}={world.tool_b_changed}",
    )
    assert code == 1
    (r,) = report["results"]
    assert r["status"] == "differs"
    assert r["remote_nar_hash"] != r["local_nar_hash"]
    files = r["diff"]["files"]
    assert [(f["path"], f["change"]) for f in files] == [("share/doc/README", "content")]
    readme = (Path(world.tool_b_changed) / "share/doc/README").read_bytes()
    assert files[0]["first_difference"] == readme.index(b"!")
    assert files[0]["ours_size"] == files[0]["theirs_size"] == len(readme)


@needs_nix
def test_pairs_file_and_explicit_dependency_pairs(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.json"
    pairs.write_text(
        json.dumps(
            {
                "pairs": [
                    {"ours": world.tool_a, "theirs": world.tool_b},
                    {"ours": world.dep_a, "theirs": world.dep_b},
                ]
            }
        )
    )
    with serve(world.cache) as server:
        code, report = run(
            capsys, "--cache", server.url, "--trusted-key", world.public, "--pairs", str(pairs)
        )
    got = {r["path"]: r["status"] for r in report["results"]}
    assert got == {
        world.tool_a: "equal-modulo-store-paths",
        world.dep_a: "equal-modulo-store-paths",
    }
    assert code == 0
    # the plain mapping form is accepted too
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({world.tool_a: world.tool_b}))
    assert load_pairs(plain) == [Pair(ours=world.tool_a, theirs=world.tool_b)]


def test_bad_pairs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"pairs": [{"ours": "/nix/store/x"}]}')
    assert main(["verify", "--against-hydra", "--pairs", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_rewriter_finds_hashes_split_across_chunks() -> None:
    rng = random.Random(5)
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
    a = [("".join(rng.choice(alphabet) for _ in range(32))) for _ in range(3)]
    b = [("".join(rng.choice(alphabet) for _ in range(32))) for _ in range(3)]
    mapping = dict(zip(a, b, strict=True))
    pieces = []
    for i in range(300):
        pieces.append(rng.randbytes(rng.randint(0, 90)).replace(b"\0", b"x"))
        pieces.append(f"/nix/store/{a[i % 3]}-name".encode())
    data = b"".join(pieces)
    expected = data
    for x, y in mapping.items():
        expected = expected.replace(x.encode(), y.encode())
    for _trial in range(20):
        out = bytearray()
        rw = HashRewriter(mapping, out.extend)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 70)
            rw.write(data[pos : pos + step])
            pos += step
        rw.close()
        assert bytes(out) == expected
        assert rw.count == 300


def test_rewriter_does_not_chain_replacements() -> None:
    x, y, z = "a" * 32, "b" * 32, "c" * 32
    out = bytearray()
    rw = HashRewriter({x: y, y: z}, out.extend)
    rw.write((x + y).encode())
    rw.close()
    assert bytes(out) == (y + z).encode()


def test_pair_mapping_by_name() -> None:
    h = lambda c: c * 32  # noqa: E731
    ours = [
        f"/nix/store/{h('a')}-dep",
        f"/nix/store/{h('b')}-libc",
        f"/nix/store/{h('c')}-dup",
        f"/nix/store/{h('d')}-dup",
    ]
    theirs = [f"/nix/store/{h('f')}-dep", f"/nix/store/{h('g')}-libc", f"/nix/store/{h('h')}-dup"]
    top = Pair(ours=f"/nix/store/{h('i')}-top", theirs=f"/nix/store/{h('j')}-top")
    m = pair_mapping([top], ours, theirs)
    assert m == {h("i"): h("j"), h("a"): h("f"), h("b"): h("g")}  # "dup" is ambiguous
