"""A hostile Hydra API answer is data: served on 127.0.0.1 by the stand-in Hydra of test_hydra.py,
with values chosen to make verify run code, hash a host file, or call nothing "reproducible"."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.formats.storepath import BadStorePath, check_store_path
from orchestrator.verify.hydra import HydraClient, HydraError, parse_build
from orchestrator.verify.local_store import query_store_paths
from tests.helpers_cache import World, needs_nix, serve, unique_salt
from tests.test_hydra import FakeHydra, fixture, hydra_build, iso_sha, run_job

H = "0" * 32


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from tests.helpers_cache import copy_to_cache

    w = World(tmp_path_factory.mktemp("hostile-hydra"), n_many=1)
    copy_to_cache([w.tool_a], w.cache, w.secret)
    return w


@pytest.mark.parametrize(
    "text",
    [
        "/nix/store/" + H + "-a/..",
        "/nix/store/" + H + "-..",
        "/nix/store/" + H + "-.hidden",
        "/nix/store/" + H + "-a b",
        "/nix/store/" + H + "-" + "x" * 212,
        "/nix/store/" + H + "-",
        "/nix/store/" + "e" * 32 + "-a",  # 'e' is not a nix32 digit
        "/nix/store/../" + H + "-a",
        "/tmp/flake",
        "nixpkgs#hello",
        "--expr",
        "/nix/store/" + H + "-a/sub",
    ],
)
def test_store_path_grammar_refuses(text: str) -> None:
    with pytest.raises(BadStorePath):
        check_store_path(text)


def test_store_path_grammar_accepts() -> None:
    for name in ("a", "hello-2.12.1", "x+y_z?=.", "n" * 211):
        assert check_store_path(f"/nix/store/{H}-{name}") == f"/nix/store/{H}-{name}"


def _hostile_flake(tmp: Path) -> tuple[Path, Path]:
    """A flake whose evaluation builds (import from derivation) a builder that writes a marker
    on this machine when the sandbox is off -- what `nix path-info <this dir>` would run."""
    d = tmp / "evil"
    d.mkdir()
    # builds run as a build user: the marker's directory must be writable by it
    out = Path(tempfile.mkdtemp(prefix="hostile-hydra-"))
    out.chmod(0o1777)
    marker = out / "ran-here"
    system = f"{platform.machine()}-linux"  # flakes evaluate purely: no currentSystem
    (d / "flake.nix").write_text(
        f'{{ outputs = _: let ifd = builtins.derivation {{ system = "{system}";\n'
        f'  name = "evil-{unique_salt()}"; builder = "/bin/sh";\n'
        f'  args = [ "-c" "echo ran > {marker}; echo {{}} > $out" ]; }};\n'
        f"in {{ packages.{system}.default = import ifd; }}; }}\n"
    )
    return d, marker


@needs_nix
def test_hydra_output_that_is_an_installable_never_reaches_nix(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NIX_CONFIG", "sandbox = false")  # Debian's default nix.conf
    evil, marker = _hostile_flake(tmp_path)
    fake = FakeHydra(hydra_build({"out": str(evil)}, {}))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url)  # no TARGET: Hydra's outputs
    ran = marker.exists()
    shutil.rmtree(marker.parent)
    assert not ran, "a Hydra answer ran a builder on this machine"
    got = {r["path"]: (r["status"], r["reason"]) for r in report["results"]}
    assert set(got) == {"hydra build 24670686: buildoutputs.out.path"}
    status, reason = got["hydra build 24670686: buildoutputs.out.path"]
    assert status == "error" and str(evil) in reason
    assert code == 2


@needs_nix
def test_hydra_output_paired_with_a_target_never_reaches_nix(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one output, one TARGET: the old plan paired them and asked `nix path-info` about Hydra's
    monkeypatch.setenv("NIX_CONFIG", "sandbox = false")
    evil, marker = _hostile_flake(tmp_path)
    fake = FakeHydra(hydra_build({"out": str(evil)}, {}))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, world.tool_a)
    ran = marker.exists()
    shutil.rmtree(marker.parent)
    assert not ran, "a Hydra answer ran a builder on this machine"
    got = {r["path"]: r["status"] for r in report["results"]}
    assert got == {
        "hydra build 24670686: buildoutputs.out.path": "error",
        world.tool_a: "reproducible",
    }
    assert code == 2


@needs_nix
def test_product_path_climbing_out_is_never_hashed(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = tmp_path / "host-secret"
    host.write_text("a file of this machine\n")
    sha = hashlib.sha256(host.read_bytes()).hexdigest()
    climb = world.tool_a + "/../.." + str(host)  # /nix/store/x/../.. is /
    products = {
        "9": {"path": climb, "type": "file", "sha256hash": sha, "name": "x"},
        **{
            k: {**v, "path": world.tool_a + "/dep/bin/x"}
            for k, v in iso_product_sha(world.tool_a, sha).items()
        },
    }
    fake = FakeHydra(hydra_build({"out": world.tool_a}, products))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, world.tool_a)
    got = {r["path"]: r for r in report["results"]}
    assert "reproducible" not in {r["status"] for r in got.values() if r["kind"] == "product"}
    bad = got["hydra build 24670686: buildproducts.9.path"]
    assert bad["status"] == "error" and "'..'" in bad["reason"]
    # a link out of the output (tool_a/dep -> the dep's store path) is not followed either
    linked = got[world.tool_a + "/dep/bin/x"]
    assert linked["status"] == "error" and "leads out of the root" in linked["reason"]
    assert got[world.tool_a]["status"] == "reproducible"
    assert code == 2


def iso_product_sha(output: str, sha: str) -> dict[str, Any]:
    return {"2": {"path": f"{output}/iso/image.iso", "type": "file", "sha256hash": sha}}


@needs_nix
def test_product_inside_the_output_still_reproducible(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeHydra(
        hydra_build({"out": world.tool_a}, iso_product_sha(world.tool_a, iso_sha(world)))
    )
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url)
    assert {r["status"] for r in report["results"]} == {"reproducible"}
    assert code == 0


@needs_nix
@pytest.mark.parametrize("strict", [False, True])
def test_build_without_outputs_is_inconclusive(
    world: World, capsys: pytest.CaptureFixture[str], strict: bool
) -> None:
    data = hydra_build({}, {})
    data["buildproducts"] = {}
    fake = FakeHydra(data)
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, *(["--strict"] if strict else []))
    assert [r["status"] for r in report["results"]] == ["not-in-cache"]
    assert report["summary"]["reproducible"] == 0
    assert code == (2 if strict else 0)


def test_finished_nan_is_not_finished() -> None:
    data = fixture("hydra-manual_GET-build-24670686.json")
    for bad in (float("nan"), float("inf"), 2, -1):
        data["finished"] = bad
        with pytest.raises(HydraError, match="finished"):
            parse_build(data)


def test_nan_and_deep_nesting_in_the_answer_are_clear_errors() -> None:
    bodies = [b'{"id": 1, "finished": NaN}', b"[" * 100_000 + b"]" * 100_000]
    for body in bodies:

        def routes(h: Any, body: bytes = body) -> bool:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return True

        with serve(routes=routes) as hydra, HydraClient(hydra.url, retries=0) as client:
            with pytest.raises(HydraError, match="not JSON"):
                client.build(1)


@needs_nix
def test_many_outputs_are_queried_in_batches() -> None:
    # 40,000 store paths (2.4 MB of arguments) in one exec would be "argument list too long"
    paths = [f"/nix/store/{str(i).zfill(32)}-o{i}" for i in range(40_000)]
    infos = query_store_paths(paths)
    assert len(infos) == 40_000 and not any(i.valid for i in infos)
    with pytest.raises(BadStorePath):
        query_store_paths([*paths[:3], "nixpkgs#hello"])


def test_hydra_answer_json_shape() -> None:
    # the real answer keeps passing: its output path is a store path by Nix's grammar
    build = parse_build(fixture("hydra-manual_GET-build-24670686.json"))
    for o in build.buildoutputs.values():
        check_store_path(o.path)
    assert json.dumps(build.model_dump())
