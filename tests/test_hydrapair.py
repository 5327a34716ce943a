"""``verify --against-hydra TARGET --pair-with-hydra``, for real on a loopback cache.

Stand-ins for the two bootstraps: two real builds of the same small derivation over two
different dependencies (tests/support/cache.py's World: ``tool_a`` over ``dep_a`` is "ours",
``tool_b`` over ``dep_b`` is "Hydra's", copied into a signed cache with ``nix copy`` and deleted
locally), so every store path differs and the content is the same. The bridged nixpkgs itself
cannot be built here (docs/bridge-nixpkgs.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.support.cache import DERIVATIONS, World, needs_nix, nix, serve
from tests.test_hydra import JOB, FakeHydra, hydra_build, iso_product


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("hydrapair-world"), n_many=1)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["verify", "--against-hydra", "--no-results", "--json", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@needs_nix
def test_the_whole_closure_is_paired_and_equal_modulo_store_paths(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code, report, _ = run(
            capsys,
            world.tool_a,
            "--pair-with-hydra",
            "--theirs",
            world.tool_b,
            "--cache",
            server.url,
            "--trusted-key",
            world.public,
        )
    got = {(r["path"], r["theirs"]): r["status"] for r in report["results"]}
    # the dependency was found by walking both closures, not named by anyone
    assert got == {
        (world.tool_a, world.tool_b): "equal-modulo-store-paths",
        (world.dep_a, world.dep_b): "equal-modulo-store-paths",
    }
    assert code == 0
    assert report["summary"]["equal_modulo_store_paths"] == 2


@needs_nix
def test_a_changed_path_differs_and_the_unchanged_dependency_is_reproducible(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # tool_b_changed (local, over dep_b, one byte more) against Hydra's tool_b (over dep_b)
    code, report, _ = run(
        capsys,
        world.tool_b_changed,
        "--pair-with-hydra",
        "--theirs",
        world.tool_b,
        "--cache",
        world.cache.as_uri(),
        "--trusted-key",
        world.public,
        "--diff",
        "--diff-tool",
        "builtin",
    )
    by_path = {r["path"]: r for r in report["results"]}
    assert by_path[world.tool_b_changed]["status"] == "differs"
    files = by_path[world.tool_b_changed]["diff"]["files"]
    assert [(f["path"], f["change"]) for f in files] == [("share/doc/README", "content")]
    # the same path on both sides: checked against the cache's signed narinfo, as a path
    assert by_path[world.dep_b]["status"] == "reproducible"
    assert by_path[world.dep_b]["kind"] == "path"
    assert code == 1


@needs_nix
def test_a_path_with_no_partner_is_missing_on_hydra(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Hydra's "partner" here has no references at all: our dependency has nothing to pair with
    unrelated = world.many[0]
    code, report, _ = run(
        capsys,
        world.tool_a,
        "--pair-with-hydra",
        "--theirs",
        unrelated,
        "--cache",
        world.cache.as_uri(),
        "--trusted-key",
        world.public,
    )
    by_path = {r["path"]: r for r in report["results"]}
    assert by_path[world.dep_a]["status"] == "not-in-cache"
    assert by_path[world.dep_a]["reason"].startswith("missing on Hydra: no single path named dep")
    assert by_path[world.tool_a]["status"] == "differs"
    assert code == 1


@needs_nix
def test_partners_come_from_the_flakes_unbridged_attribute(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --theirs, Hydra's partner of `<flake>#<attr>` is `lib.bridge.hydraPartners.<attr>`
    of the same flake (the bridge's flake computes it from the pinned nixpkgs without the bridge;
    this stand-in flake gives tool_b for tool_a, the same derivations World built, and one extra
    root on each side)."""
    flake = tmp_path / "flake"
    flake.mkdir()
    system = nix("eval", "--impure", "--raw", "--expr", "builtins.currentSystem").stdout
    (flake / "derivations.nix").write_text(
        DERIVATIONS.replace("builtins.currentSystem", json.dumps(system))
    )
    (flake / "flake.nix").write_text(
        "{ outputs = { self }: let d = import ./derivations.nix { salt = "
        + json.dumps(world.salt)
        + "; }; in {\n"
        f"  packages.{system}.tool = d.toolA // {{ hydraPairRoots = [ d.nondet ]; }};\n"
        "  lib.bridge.hydraPartners.tool = d.toolB // { hydraPairRoots = [ d.nondet ]; };\n} ; }\n"
    )
    with serve(world.cache) as server:
        code, report, _ = run(
            capsys,
            f"path:{flake}#tool",
            "--pair-with-hydra",
            "--cache",
            server.url,
            "--trusted-key",
            world.public,
        )
    got = {(r["path"], r["theirs"]): r["status"] for r in report["results"]}
    assert got == {
        (world.tool_a, world.tool_b): "equal-modulo-store-paths",
        (world.dep_a, world.dep_b): "equal-modulo-store-paths",
        # an extra root (hydraPairRoots, as the ISO names its toplevel), the same path on both
        # sides: checked against the cache, whose copy has other bytes than this rebuild
        (world.nondet, None): "differs",
    }
    assert code == 1


def test_a_store_path_target_needs_theirs(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "verify",
            "--against-hydra",
            "--no-results",
            "/nix/store/" + "a" * 32 + "-x",
            "--pair-with-hydra",
        ]
    )
    assert code == 2
    assert "--pair-with-hydra needs a flake attribute" in capsys.readouterr().err


@needs_nix
def test_with_a_hydra_job_the_roots_and_the_image_come_from_hydra(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """--job: Hydra's build output is the root partner (as for the ISO, whose Hydra path cannot
    be evaluated without Hydra's revCount), its closure is walked, and the build product's
    sha256 is compared with a note on why an ISO's is expected to differ."""
    sha = hashlib.sha256((Path(world.tool_a) / "iso/image.iso").read_bytes()).hexdigest()
    fake = FakeHydra(hydra_build({"out": world.tool_b}, iso_product(world.tool_b, sha)))
    with serve(routes=fake.routes) as hydra, serve(world.cache) as cache:
        code, report, err = run(
            capsys,
            world.tool_a,
            "--pair-with-hydra",
            "--job",
            JOB,
            "--hydra",
            hydra.url,
            "--cache",
            cache.url,
            "--trusted-key",
            world.public,
        )
    got = {(r["kind"], r["path"]): r["status"] for r in report["results"]}
    assert got == {
        ("pair", world.tool_a): "equal-modulo-store-paths",
        ("pair", world.dep_a): "equal-modulo-store-paths",
        ("product", f"{world.tool_a}/iso/image.iso"): "reproducible",
    }
    (product,) = [r for r in report["results"] if r["kind"] == "product"]
    assert "expected to differ from Hydra's only through store paths" in product["reason"]
    assert "expected to differ from Hydra's only through store paths" in err
    assert code == 0


def test_theirs_needs_pair_with_hydra(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/nix/store/" + "a" * 32 + "-x"
    assert main(["verify", "--against-hydra", "--no-results", path, "--theirs", path]) == 2
    assert "--theirs goes with --pair-with-hydra" in capsys.readouterr().err
