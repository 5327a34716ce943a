"""Hydra: the real API answers in the shared fixtures parse, and the ``--job`` flow works.

No Hydra can run here, so the ``--job`` tests use the one stand-in of this suite: a small HTTP
server on 127.0.0.1 that answers like Hydra's API (JSON only with ``Accept: application/json``,
``/job/<project>/<jobset>/<job>/latest`` as a 302 to ``/build/<id>``), its build answer made from
the real fixture ``hydra-manual_GET-build-24670686.json`` with the outputs and products pointed
at real local builds. The binary cache beside it is real (``nix copy``, signed).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.verify.hydra import (
    HydraClient,
    HydraError,
    parse_build,
    split_job,
)
from tests.support.cache import World, copy_to_cache, needs_nix, serve

REPO = Path(__file__).resolve().parent.parent
HYDRA_FIXTURES = REPO.parent / "shared" / "fixtures" / "hydra"
JOB = "hydra/build-ng/tests.api.x86_64-linux"


def fixture(name: str) -> Any:
    path = HYDRA_FIXTURES / name
    if not path.is_file():
        pytest.fail(f"fixture data missing: {path}")
    return json.loads(path.read_text())


def test_real_build_answer_parses() -> None:
    b = parse_build(fixture("hydra-manual_GET-build-24670686.json"))
    assert b.id == 24670686 and b.finished is True and b.buildstatus == 0 and b.succeeded
    assert b.full_job == JOB
    assert b.buildoutputs["out"].path.endswith("-vm-test-run-unnamed")
    product = b.buildproducts["1"]
    assert product.sha256hash is None and product.filesize is None  # real nulls
    assert product.type == "report" and product.subtype == "testlog"
    assert b.drvpath is None  # missing in this answer
    assert b.jobsetevals == [1213758]


def test_nulls_and_flags() -> None:
    b = parse_build(
        {"id": 1, "finished": 0, "buildoutputs": None, "buildproducts": None, "jobsetevals": None}
    )
    assert not b.finished and not b.succeeded
    assert b.buildoutputs == {} and b.buildproducts == {} and b.jobsetevals == []
    with pytest.raises(HydraError):
        parse_build({"finished": 1})  # no id: not a build
    with pytest.raises(HydraError, match="PROJECT/JOBSET/JOB"):
        split_job("nixos/trunk")


# --------------------------------------------------------------------------------------------
# The stand-in Hydra


class FakeHydra:
    def __init__(self, build: dict[str, Any]) -> None:
        self.build = build
        self.accept_headers: list[str] = []

    def routes(self, h: Any) -> bool:
        self.accept_headers.append(h.headers.get("Accept", ""))
        if "application/json" not in h.headers.get("Accept", ""):
            body = b"<html>Hydra</html>"
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return True
        if h.path == f"/job/{JOB}/latest":
            h.send_response(302)
            h.send_header("Location", f"/build/{self.build['id']}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        if h.path == f"/build/{self.build['id']}":
            body = json.dumps(self.build).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return True
        h.send_error(404)
        return True


def hydra_build(outputs: dict[str, str], products: dict[str, dict[str, Any]], **kw: Any) -> dict:
    data = fixture("hydra-manual_GET-build-24670686.json")
    data["buildoutputs"] = {name: {"path": p} for name, p in outputs.items()}
    data["buildproducts"] = {**data["buildproducts"], **products}
    data.update(kw)
    return data


def iso_product(output: str, sha: str) -> dict[str, Any]:
    return {
        "2": {
            "path": f"{output}/iso/image.iso",
            "type": "file",
            "subtype": "iso",
            "name": "image.iso",
            "defaultpath": "",
            "sha256hash": sha,
            "filesize": 12,
        }
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("hydra-world"), n_many=1)
    copy_to_cache([w.tool_a], w.cache, w.secret)  # Hydra "built" tool_a too
    return w


def iso_sha(world: World) -> str:
    return hashlib.sha256((Path(world.tool_a) / "iso/image.iso").read_bytes()).hexdigest()


def run_job(capsys: pytest.CaptureFixture[str], world: World, hydra_url: str, *targets: str):  # type: ignore[no-untyped-def]
    with serve(world.cache) as cache:
        code = main(
            [
                "verify",
                "--against-hydra",
                "--job",
                JOB,
                "--hydra",
                hydra_url,
                "--cache",
                cache.url,
                "--trusted-key",
                world.public,
                "--no-results",
                "--json",
                *targets,
            ]
        )
    return code, json.loads(capsys.readouterr().out)


@needs_nix
def test_client_sends_accept_and_follows_latest_redirect(world: World) -> None:
    fake = FakeHydra(hydra_build({"out": world.tool_a}, {}))
    with serve(routes=fake.routes) as hydra, HydraClient(hydra.url) as client:
        build = client.latest(JOB)
    assert build.id == 24670686
    assert build.buildoutputs["out"].path == world.tool_a
    assert fake.accept_headers and all("application/json" in a for a in fake.accept_headers)
    assert hydra.requests == [f"/job/{JOB}/latest", "/build/24670686"]


@needs_nix
def test_job_same_paths_reproducible(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeHydra(hydra_build({"out": world.tool_a}, iso_product(world.tool_a, iso_sha(world))))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url)  # no TARGET: Hydra's outputs
    assert report["hydra_build"] == 24670686 and report["job"] == JOB
    got = {(r["kind"], r["path"]): r["status"] for r in report["results"]}
    assert got == {
        ("path", world.tool_a): "reproducible",
        ("product", f"{world.tool_a}/iso/image.iso"): "reproducible",
    }
    assert code == 0


@needs_nix
def test_job_other_bootstrap_equal_modulo_store_paths(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Hydra built tool_b (other bootstrap); ours is tool_a
    fake = FakeHydra(hydra_build({"out": world.tool_b}, iso_product(world.tool_b, iso_sha(world))))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, world.tool_a)
    got = {(r["kind"], r["path"]): (r["status"], r["theirs"]) for r in report["results"]}
    assert got == {
        ("pair", world.tool_a): ("equal-modulo-store-paths", world.tool_b),
        ("product", f"{world.tool_a}/iso/image.iso"): (
            "reproducible",
            f"{world.tool_b}/iso/image.iso",
        ),
    }
    assert code == 0


@needs_nix
def test_job_product_hash_differs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = hashlib.sha256(b"another image").hexdigest()
    fake = FakeHydra(hydra_build({"out": world.tool_a}, iso_product(world.tool_a, wrong)))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, world.tool_a)
    got = {r["kind"]: r["status"] for r in report["results"]}
    assert got == {"path": "reproducible", "product": "differs"}
    assert code == 1


@needs_nix
def test_job_unmatched_output_is_inconclusive(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    outs = {"out": world.tool_a, "dev": "/nix/store/" + "1" * 32 + "-tool-dev"}
    fake = FakeHydra(hydra_build(outs, {}))
    with serve(routes=fake.routes) as hydra:
        code, report = run_job(capsys, world, hydra.url, world.tool_a)
    got = {r["path"]: r["status"] for r in report["results"]}
    assert got == {outs["dev"]: "not-built-locally", world.tool_a: "reproducible"}
    assert code == 0


@needs_nix
def test_job_latest_not_successful(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeHydra(hydra_build({"out": world.tool_a}, {}, finished=0, buildstatus=None))
    with serve(routes=fake.routes) as hydra:
        code = main(
            ["verify", "--against-hydra", "--job", JOB, "--hydra", hydra.url, "--no-results"]
        )
    assert code == 2
    assert "did not succeed" in capsys.readouterr().err


def test_hydra_unreachable_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with serve() as dead:
        url = dead.url
    code = main(
        [
            "verify",
            "--against-hydra",
            "--job",
            JOB,
            "--hydra",
            url,
            "--retries",
            "0",
            "--timeout",
            "2",
            "--no-results",
        ]
    )
    assert code == 2
    assert "ConnectError" in capsys.readouterr().err
