"""``verify --against-hydra`` end to end: real Nix builds, a real binary cache made by
``nix copy`` and signed with a ``nix key generate-secret`` key, served over HTTP on 127.0.0.1.

Every case of the issue: match, tampered narinfo, wrong NarHash re-signed, missing narinfo,
server killed mid-run, substituted path, plus retries, garbled narinfos, unknown keys, --diff
on a nondeterministic build from a zstd NAR, --closure, --rehash and the results file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.formats.hashes import Hash
from orchestrator.formats.narinfo import parse_narinfo, parse_secret_key, sign_narinfo
from orchestrator.nixstr import nix_attr, nix_json
from orchestrator.verify.report import Report, report_schema
from orchestrator.verify.results_file import load_results
from tests.support.cache import (
    World,
    narinfo_file,
    needs_nix,
    nix,
    port_is_closed,
    serve,
    wait_until,
)

pytestmark = needs_nix
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("verify-world"))


def verify(
    capsys: pytest.CaptureFixture[str], world: World, cache_url: str, *args: str, results: Path
) -> tuple[int, Report]:
    code = main(
        [
            "verify",
            "--against-hydra",
            "--cache",
            cache_url,
            "--trusted-key",
            world.public,
            "--results",
            str(results),
            "--json",
            *args,
        ]
    )
    out = capsys.readouterr().out
    return code, Report.model_validate_json(out)


def statuses(report: Report) -> dict[str, str]:
    return {r.path: r.status.value for r in report.results}


def test_match_is_reproducible(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code, report = verify(capsys, world, server.url, *world.many, results=tmp_path / "r.jsonl")
    assert code == 0
    assert statuses(report) == dict.fromkeys(world.many, "reproducible")
    for r in report.results:
        assert r.signed_by == [world.public.split(":")[0]]
        assert r.local_nar_hash == r.remote_nar_hash
    assert report.summary.line().startswith(
        f"{len(world.many)} paths: {len(world.many)} reproducible"
    )
    # the results file has everything, in the same schema
    saved = load_results(tmp_path / "r.jsonl")
    assert saved.complete
    assert statuses(saved) == statuses(report)
    # the narinfos really were fetched over HTTP
    assert {p.lstrip("/") for p in server.requests} >= {
        f"{Path(p).name[:32]}.narinfo" for p in world.many
    }


def test_tampered_narinfo_is_untrusted(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = world.cache_copy(tmp_path / "cache")
    victim = world.many[0]
    f = narinfo_file(cache, victim)
    f.write_text(f.read_text().replace("NarSize: ", "NarSize: 9"))
    with serve(cache) as server:
        code, report = verify(capsys, world, server.url, *world.many[:2], results=tmp_path / "r")
    assert code == 2
    st = statuses(report)
    assert st[victim] == "untrusted"
    assert st[world.many[1]] == "reproducible"
    bad = next(r for r in report.results if r.path == victim)
    assert "does not verify" in (bad.reason or "")


def test_wrong_narhash_resigned_differs(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = world.cache_copy(tmp_path / "cache")
    victim = world.many[1]
    f = narinfo_file(cache, victim)
    info = parse_narinfo(f.read_text())
    wrong = info.model_copy(update={"nar_hash": Hash.of_bytes(b"something else")})
    f.write_text(sign_narinfo(wrong, parse_secret_key(world.secret.read_text())).to_text())
    with serve(cache) as server:
        code, report = verify(
            capsys, world, server.url, victim, world.many[2], results=tmp_path / "r"
        )
    assert code == 1
    st = statuses(report)
    assert st == {victim: "differs", world.many[2]: "reproducible"}
    r = report.results[0]
    assert r.remote_nar_hash == wrong.nar_hash.to_nix32() != r.local_nar_hash


def test_missing_narinfo_is_not_in_cache(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = world.cache_copy(tmp_path / "cache")
    narinfo_file(cache, world.many[2]).unlink()
    with serve(cache) as server:
        code, report = verify(capsys, world, server.url, world.many[2], results=tmp_path / "r")
    assert code == 0  # inconclusive, not a failure...
    assert statuses(report) == {world.many[2]: "not-in-cache"}
    assert report.summary.inconclusive == 1
    with serve(cache) as server:
        code, _ = verify(
            capsys, world, server.url, "--strict", world.many[2], results=tmp_path / "r"
        )
    assert code == 2  # ...unless --strict


def test_substituted_path_is_not_built_locally(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code, report = verify(capsys, world, server.url, world.substituted, results=tmp_path / "r")
        assert code == 0
        (r,) = report.results
        assert r.status.value == "not-built-locally"
        assert "substituted" in (r.reason or "")
        assert "--rebuild" in (r.hint or "")
        # refused without even asking the cache
        assert not any(world.substituted.split("/")[-1][:32] in p for p in server.requests)


def test_not_valid_locally(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "/nix/store/" + "0" * 32 + "-never-built"
    _code, report = verify(capsys, world, world.cache.as_uri(), missing, results=tmp_path / "r")
    (r,) = report.results
    assert r.status.value == "not-built-locally"
    assert r.hint is not None and "nix build" in r.hint


def test_installable_targets(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system = nix("eval", "--impure", "--raw", "--expr", "builtins.currentSystem").stdout
    flake = tmp_path / "flake"
    flake.mkdir()
    drv = nix_json(
        {
            "name": f"thing-{world.salt}",
            "system": system,
            "builder": "/bin/sh",
            "args": ["-c", "echo thing > $out"],
        }
    )
    (flake / "flake.nix").write_text(
        f"{{ outputs = {{ self }}: {{ packages.{nix_attr(system)}.thing = "
        f"builtins.derivation {drv}; }}; }}"
    )
    installable = f"path:{flake}#thing"
    _code, report = verify(capsys, world, world.cache.as_uri(), installable, results=tmp_path / "r")
    (r,) = report.results
    assert r.path.endswith(f"-thing-{world.salt}")
    assert r.status.value == "not-built-locally"
    assert r.hint is not None and f"nix build --option substitute false {installable}" in r.hint
    nix("build", "--no-link", installable)
    _code, report = verify(capsys, world, world.cache.as_uri(), installable, results=tmp_path / "r")
    assert [x.status.value for x in report.results] == ["not-in-cache"]  # built, never cached


def test_unknown_key_is_untrusted(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code = main(
            [
                "verify",
                "--against-hydra",
                "--cache",
                server.url,
                "--json",
                "--results",
                str(tmp_path / "r"),
                world.many[0],
            ]
        )  # default trusted key: cache.nixos.org-1 only
    report = Report.model_validate_json(capsys.readouterr().out)
    assert code == 2
    (r,) = report.results
    assert r.status.value == "untrusted"
    assert f"untrusted key {world.public.split(':')[0]}" in (r.reason or "")


def test_garbled_narinfo_is_an_error_and_the_run_goes_on(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = world.cache_copy(tmp_path / "cache")
    narinfo_file(cache, world.many[3]).write_text("StorePath: /nix/store/short\nNarSize: x\n")
    with serve(cache) as server:
        code, report = verify(capsys, world, server.url, *world.many[3:5], results=tmp_path / "r")
    assert code == 2
    st = statuses(report)
    assert st == {world.many[3]: "error", world.many[4]: "reproducible"}
    assert "garbled narinfo" in (report.results[0].reason or "")


def test_transient_failures_are_retried(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache, fail_first=2) as server:
        code, report = verify(
            capsys, world, server.url, "--retries", "3", *world.many[:3], results=tmp_path / "r"
        )
    assert code == 0
    assert set(statuses(report).values()) == {"reproducible"}
    assert sum(server.failed.values()) == 6  # two 503s per narinfo, then success


def test_server_killed_mid_run(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "partial.jsonl"
    with serve(world.cache, die_after=3) as server:
        code, report = verify(
            capsys,
            world,
            server.url,
            "--jobs",
            "1",
            "--retries",
            "1",
            "--timeout",
            "2",
            *world.many,
            results=results,
        )
        assert wait_until(lambda: port_is_closed(server.port))
    assert code == 2
    got = [r.status.value for r in report.results]
    assert got[:3] == ["reproducible"] * 3
    assert got[3:] == ["error"] * (len(world.many) - 3)
    reasons = [r.reason or "" for r in report.results[3:]]
    # 2 x --jobs attempts in a row failed: the cache is taken as down, and every path not yet
    # answered says so instead of waiting through its own retries
    assert all(
        "gave up, the cache stopped answering (2 attempts in a row failed" in r for r in reasons
    ), reasons
    saved = load_results(results)
    assert [r.status.value for r in saved.results].count("reproducible") == 3
    assert saved.summary.exit_code == 2


def test_a_cache_that_never_answers_ends_the_run(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole closure against a server that accepts connections and never answers: every path
    is an error that says the cache was given up on (not one full retry cycle per path)."""
    held: list[socket.socket] = []
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)

    def accept() -> None:
        while not stop.is_set():  # bounded: ends when the test is done
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        code, report = verify(
            capsys,
            world,
            f"http://127.0.0.1:{listener.getsockname()[1]}",
            "--closure",
            "--jobs",
            "2",
            "--timeout",
            "0.5",
            "--retries",
            "3",
            world.tool_a,
            *world.many,
            results=tmp_path / "r",
        )
    finally:
        stop.set()
        acceptor.join(5)
        for s in held:
            s.close()
        listener.close()
    assert code == 2
    assert set(statuses(report)) == {world.tool_a, world.dep_a, *world.many}
    assert set(statuses(report).values()) == {"error"}
    assert all(
        "gave up, the cache stopped answering" in (r.reason or "") for r in report.results
    ), [r.reason for r in report.results]
    assert len(held) <= 2 * 2 + 2  # the attempts before giving up, and those in flight
    assert report.cache_gave_up is not None
    assert re.search(r"\d+ attempts in a row failed|no answer for", report.cache_gave_up)
    assert load_results(tmp_path / "r").cache_gave_up == report.cache_gave_up


def test_interrupted_run_keeps_what_it_found(world: World, tmp_path: Path) -> None:
    """SIGINT in the middle of a run: the results file already holds the finished paths."""
    release = threading.Event()
    served: list[str] = []

    def routes(handler) -> bool:  # type: ignore[no-untyped-def]
        served.append(handler.path)
        if len(served) > 2:
            release.wait(20)  # stall: the run cannot finish
        return False

    results = tmp_path / "interrupted.jsonl"
    with serve(world.cache, routes=routes) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "verify",
                "--against-hydra",
                "--cache",
                server.url,
                "--trusted-key",
                world.public,
                "--jobs",
                "1",
                "--results",
                str(results),
                *world.many,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: len(served) > 2, timeout=20)
            assert wait_until(lambda: results.exists() and results.read_text().count("\n") >= 3)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    saved = load_results(results)
    assert not saved.complete
    assert [r.status.value for r in saved.results] == ["reproducible", "reproducible"]


def test_nondeterministic_build_differs_and_diff_explains(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code, report = verify(
            capsys,
            world,
            server.url,
            "--diff",
            "--diff-tool",
            "builtin",
            world.nondet,
            results=tmp_path / "r",
        )
    assert code == 1
    (r,) = report.results
    assert r.status.value == "differs"
    assert r.diff is not None and r.diff.error is None, r.diff
    ours = Path(world.nondet, "stamp").read_bytes()
    theirs = world.nondet_cached_stamp
    first = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
    assert [(f.path, f.change, f.first_difference) for f in r.diff.files] == [
        ("stamp", "content", first)
    ]
    assert r.diff.files[0].ours_size == r.diff.files[0].theirs_size == len(ours)


def test_closure_includes_dependencies(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(world.cache) as server:
        code, report = verify(
            capsys, world, server.url, "--closure", world.tool_a, results=tmp_path / "r"
        )
    assert set(statuses(report)) == {world.tool_a, world.dep_a}
    # neither was copied to the cache: our bootstrap's paths are not there
    assert set(statuses(report).values()) == {"not-in-cache"}
    assert code == 0


def test_file_cache_and_rehash(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = verify(
        capsys, world, world.cache.as_uri(), "--rehash", *world.many[:2], results=tmp_path / "r"
    )
    assert code == 0
    assert set(statuses(report).values()) == {"reproducible"}


def test_rehash_detects_a_corrupt_local_copy(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = Path(world.many[-1])
    original = victim.read_bytes()
    os.chmod(victim, 0o644)
    try:
        victim.write_bytes(original.replace(b"o", b"0"))
        code, report = verify(
            capsys, world, world.cache.as_uri(), "--rehash", str(victim), results=tmp_path / "r"
        )
        assert code == 2
        (r,) = report.results
        assert r.status.value == "error" and "does not match the store database" in (r.reason or "")
        code, report = verify(
            capsys, world, world.cache.as_uri(), str(victim), results=tmp_path / "r"
        )
        assert report.results[0].status.value == "reproducible"  # the database alone is fooled
    finally:
        victim.write_bytes(original)
        os.chmod(victim, 0o444)
    assert nix("store", "verify", "--no-trust", str(victim), check=False).returncode == 0


def test_table_output_and_summary(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "verify",
            "--against-hydra",
            "--cache",
            world.cache.as_uri(),
            "--trusted-key",
            world.public,
            "--no-results",
            world.many[0],
            world.nondet,
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "reproducible" in out and "differs" in out
    assert "2 paths: 1 reproducible, 1 differ, 0 inconclusive" in out


def test_schema_is_printed_and_matches_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == report_schema()
    assert set(schema["properties"]) >= {"schema_version", "results", "summary", "complete"}
    statuses_in_schema = schema["$defs"]["Status"]["enum"]
    assert statuses_in_schema == [
        "reproducible",
        "equal-modulo-store-paths",
        "differs",
        "not-in-cache",
        "not-built-locally",
        "untrusted",
        "error",
    ]


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "some-target"]) == 2
    err = capsys.readouterr().err
    assert "say what to compare with" in err and "--against-hydra" in err and "--rebuild" in err
    assert main(["verify", "--against-hydra"]) == 2
    assert "nothing to verify" in capsys.readouterr().err
    assert main(["verify", "--against-hydra", "--pair", "a=b"]) == 2
    assert "not a store path" in capsys.readouterr().err


def test_local_path_targets(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``result`` (no slash: Nix would look it up as a flake) and ``./result`` are paths."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "result").symlink_to(world.many[0])
    (tmp_path / "sub").symlink_to(Path(world.tool_a) / "bin")
    code, report = verify(
        capsys, world, world.cache.as_uri(), "result", "./result", "sub", results=tmp_path / "r"
    )
    assert [r.path for r in report.results] == [world.many[0], world.tool_a]
    assert statuses(report) == {world.many[0]: "reproducible", world.tool_a: "not-in-cache"}
    assert code == 0
    (tmp_path / "plain").write_text("not in the store\n")
    for target, message in [
        ("plain", "is a local path outside the Nix store"),
        ("./missing", "no such file or directory"),
    ]:
        assert main(["verify", "--against-hydra", "--no-results", target]) == 2
        assert message in capsys.readouterr().err


def test_results_file_defaults_to_the_xdg_cache_dir(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code = main(
        [
            "verify",
            "--against-hydra",
            "--cache",
            world.cache.as_uri(),
            "--trusted-key",
            world.public,
            world.many[0],
        ]
    )
    assert code == 0
    expected = tmp_path / "xdg" / "orchestrator" / "verify-results.jsonl"
    assert f"results: {expected}" in capsys.readouterr().err
    assert statuses(load_results(expected)) == {world.many[0]: "reproducible"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xdg"]  # nothing in the cwd
