"""``orchestrator build``: real ``nix build`` runs of a busybox-built stand-in chain.

The stand-in flake's packages carry the attribute names of the first steps of the real generated
chain, so step numbering (i/N), passes and ``--until`` are exercised against the chain model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestrator.build.progress import Durations
from orchestrator.build.targets import installable
from orchestrator.cli import main
from orchestrator.formats.storepath import fixed_output_path
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.locate import REPO_ROOT, read_tree
from tests.test_nixlog import NIX_FLAGS, nix_string, write_flake


@pytest.fixture(scope="module")
def chain_steps() -> list:
    return load_chain(read_tree(None)).steps


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_quoting() -> None:
    # attribute-path quoting itself is tested against real Nix in test_nixstr.py
    assert installable("mes-0.27.1-pass1", ".") == '.#"mes-0.27.1-pass1"'
    assert installable("path:/x#y", ".") == "path:/x#y"


def test_build_then_eta_from_earlier_run(
    tmp_path: Path, chain_steps: list, capsys, cache_home: Path
) -> None:
    attrs = [s.step.attr_name for s in chain_steps[:3]]
    scripts = [
        "echo one; sleep 1; echo one > $out",
        "echo two; sleep 0.5; echo two > $out",
        "for i in 1 2; do echo three $i; done; echo three > $out",
    ]
    flake = write_flake(tmp_path / "f", list(zip(attrs, scripts, strict=True)))
    rc, out, err = _run(capsys, "build", "--flake", flake, attrs[2], "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["exit_code"] == 0
    assert [b["step"] for b in data["builds"]] == attrs
    assert [(b["step_index"], b["steps_total"]) for b in data["builds"]] == [(1, 3), (2, 3), (3, 3)]
    assert [b["pass"] for b in data["builds"]] == [s.step.pass_no for s in chain_steps[:3]]
    assert all(b["status"] == "built" for b in data["builds"])
    assert data["eta_seconds"] is None and data["eta_unknown"] == 3
    assert len(data["outputs"]) == 1 and Path(data["outputs"][0]).read_text() == "three\n"
    assert "build summary" in err and f"step 1/3 {chain_steps[0].step.name} pass" in err
    recorded = Durations(cache_home / "orchestrator" / "durations.json").seconds
    assert set(recorded) == set(attrs)
    assert recorded[attrs[0]] >= 1.0 and recorded[attrs[1]] >= 0.5

    # Same names, new hashes: everything builds again, and the ETA comes from the first run.
    write_flake(tmp_path / "f", list(zip(attrs, scripts, strict=True)))
    rc, out, err = _run(capsys, "build", "--flake", flake, attrs[2], "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert [b["expected_seconds"] for b in data["builds"]] == [recorded[a] for a in attrs]
    assert data["eta_seconds"] == pytest.approx(sum(recorded.values()))
    assert f"last run {round(recorded[attrs[0]]) // 60}:" in err

    # Nothing left to build: nothing runs, the output is printed.
    rc, out, err = _run(capsys, "build", "--flake", flake, attrs[2])
    assert rc == 0 and out.strip() == data["outputs"][0]
    assert f"nothing to build: {attrs[2]} is in the store" in err


def test_until_builds_a_prefix(tmp_path: Path, chain_steps: list, capsys) -> None:
    attrs = [s.step.attr_name for s in chain_steps[:3]]
    flake = write_flake(tmp_path / "f", [(a, f"echo {i} > $out") for i, a in enumerate(attrs)])
    rc, out, err = _run(capsys, "build", "--flake", flake, "--until", attrs[1], "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert [b["step"] for b in data["builds"]] == attrs[:2]
    assert {b["steps_total"] for b in data["builds"]} == {2}


def test_unknown_step_and_conflicting_arguments(capsys, chain_steps: list) -> None:
    name = chain_steps[2].step.attr_name
    rc, _, err = _run(capsys, "build", "--until", name + "x")
    assert rc == 2 and "no such step" in err and name in err
    rc, _, err = _run(capsys, "build", chain_steps[0].step.attr_name, "--until", name)
    assert rc == 2 and "either TARGET" in err


def test_unknown_target_in_flake(tmp_path: Path, capsys, chain_steps: list) -> None:
    attrs = [s.step.attr_name for s in chain_steps[:1]]
    flake = write_flake(tmp_path / "f", [(attrs[0], "echo > $out")])
    rc, _, err = _run(capsys, "build", "--flake", flake, "stage1")
    assert rc == 2 and "has no target 'stage1'" in err and "stage0" in err


def test_failure_names_step_pass_log_tail_and_reentry(
    tmp_path: Path, chain_steps: list, capsys
) -> None:
    attrs = [s.step.attr_name for s in chain_steps[:3]]
    failing = chain_steps[2].step
    flake = write_flake(
        tmp_path / "f",
        [
            (attrs[0], "echo ok > $out"),
            (attrs[1], "echo ok > $out"),
            (
                attrs[2],
                "for i in $(seq 1 40); do echo log line $i; done; echo state > here; exit 4",
            ),
        ],
    )
    direct = subprocess.run(
        ["nix", *NIX_FLAGS, "build", "--no-link", installable(attrs[2], flake)],
        capture_output=True,
        text=True,
    )
    assert direct.returncode != 0
    rc, _out, err = _run(capsys, "build", "--flake", flake, attrs[2], "--keep-failed")
    assert rc == direct.returncode, "the exit code is the build's"
    assert f"step {failing.name} pass {failing.pass_no}" in err
    assert "chain step 3 of 3" in err
    assert "last 30 log lines (of 40)" in err
    for i in range(11, 41):
        assert f"  log line {i}\n" in err
    assert "  log line 10\n" not in err
    kept = [line for line in err.splitlines() if "build directory is kept at" in line]
    assert kept, err
    kept_dir = Path(kept[0].split("kept at ", 1)[1].split(":", 1)[0])
    try:
        assert (kept_dir / "here").read_text().strip() == "state"
    finally:
        shutil.rmtree(kept_dir, ignore_errors=True)
    assert "nix log /nix/store/" in err

    rc, _out, err = _run(capsys, "build", "--flake", flake, attrs[2])
    assert f"build {attrs[2]} --keep-failed" in err, "without --keep-failed it says how to keep it"


def _fetchers_flake(root: Path, step: str, name: str, data: bytes, url: str) -> str:
    """A step that needs one distfile through the project's own nix/fetchers.nix."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "nix" / "fetchers.nix", root / "fetchers.nix")
    sha = hashlib.sha256(data).hexdigest()
    extra = f"""
    fetchers = import ./fetchers.nix {{ }};
    src = fetchers.fetchDistfile {{ name = {nix_string(name)}; sha256 = "{sha}"; urls = [ {nix_string(url)} ]; }};
"""
    return write_flake(
        root,
        [],
        extra=extra,
        extra_packages=f"""{nix_string(step)} = derivation {{
      name = {nix_string(step)}; system = "x86_64-linux"; builder = bb; inherit src;
      args = [ "sh" "-c" "cat $src > $out" ];
    }};""",
    )


def test_missing_distfiles_offline_then_seeded(tmp_path: Path, chain_steps: list, capsys) -> None:
    step = chain_steps[0].step.attr_name
    name = f"stand-in-{uuid.uuid4().hex[:8]}.tar.gz"
    data = os.urandom(4096)
    # a closed port on the loopback: the download fails at once, as offline
    flake = _fetchers_flake(tmp_path / "f", step, name, data, "http://127.0.0.1:9/" + name)
    expected = fixed_output_path(name, hashlib.sha256(data).hexdigest())

    rc, _, err = _run(capsys, "build", "--flake", flake, step, "--offline")
    assert rc == 1
    assert name in err and "distfiles seed" in err and "nothing was built" in err

    rc, _, err = _run(capsys, "build", "--flake", flake, step, "--option", "download-attempts", "1")
    assert rc != 0
    assert "could not be downloaded" in err and name in err and "distfiles seed DIR" in err
    assert f"fetch {name}" in err, "the progress names the download as such"

    seed_dir = tmp_path / "distfiles"
    seed_dir.mkdir()
    (seed_dir / name).write_bytes(data)
    listing = tmp_path / "list.json"
    listing.write_text(
        json.dumps([{"filename": name, "sha256": hashlib.sha256(data).hexdigest(), "urls": []}])
    )
    rc, out, err = _run(
        capsys, "distfiles", "seed", str(seed_dir), "--list", str(listing), "--json"
    )
    assert rc == 0, err
    assert json.loads(out)["results"][0]["store_path"] == expected

    rc, out, err = _run(capsys, "build", "--flake", flake, step, "--offline", "--json")
    assert rc == 0, err
    built = json.loads(out)
    assert Path(built["outputs"][0]).read_bytes() == data
    assert built["missing_distfiles"] == []


# -- the runner's synthetic chain (nix/runner.nix over ns-run, kaem and bash era) -----------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    from tests.runner_support.synth import Synth, missing_tools

    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the runner's synthetic chain needs {', '.join(missing)}")
        pytest.skip(f"the runner's synthetic chain needs {', '.join(missing)}")
    s = Synth(tmp_path_factory.mktemp("synth"))
    s.prepare(None, update_checksums=True)
    return s


def _synth_build(capsys, synth, *argv: str, prefix: str = "synth-") -> tuple[int, str, str]:
    return _run(
        capsys,
        "build",
        "--file",
        str(synth.harness),
        *synth.args(),
        "--argstr",
        "prefix",
        prefix,  # a fresh prefix: fresh derivations, so that they really build
        "--live-bootstrap",
        str(synth.tree),
        *argv,
    )


def test_runner_chain_progress_and_steps(synth, capsys) -> None:
    from orchestrator.upstream.tree import SourceTree

    chain = load_chain(SourceTree.open(synth.tree))
    last = synth.attrs[-1]
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    rc, out, err = _synth_build(capsys, synth, last, "--json", prefix=prefix)
    assert rc == 0, err
    data = json.loads(out)
    built = [b for b in data["builds"] if b["step"]]
    # every step derivation of the runner (named with a prefix) is matched to its chain step
    assert [b["step"] for b in built] == synth.attrs
    assert [b["name"] for b in built] == [f"{prefix}{a}" for a in synth.attrs]
    assert [b["pass"] for b in built] == [s.step.pass_no for s in chain.steps]
    assert [(b["step_index"], b["steps_total"]) for b in built] == [
        (i + 1, len(synth.attrs)) for i in range(len(synth.attrs))
    ]
    assert all(b["status"] == "built" for b in built)
    delta2 = next(b for b in built if b["step"] == "delta-1.0-pass2")
    assert delta2["log_lines"] > 0
    assert f"step {len(synth.attrs)}/{len(synth.attrs)} epsilon-1.0 pass 1" in err


def test_runner_step_failure_report(synth, capsys, tmp_path: Path) -> None:
    """A wrong pin fails its step inside the runner; the report names step and pass."""
    from tests.runner_support.synth import Synth

    bad = Synth(tmp_path / "bad")
    bad.prepare({"delta-1.0_0.tar.bz2": "0" * 64})
    rc, _out, err = _synth_build(
        capsys, bad, "delta-1.0-pass1", "--keep-failed", prefix=f"t{uuid.uuid4().hex[:8]}-"
    )
    assert rc != 0
    assert "step delta-1.0 pass 1 (attribute delta-1.0-pass1, chain step 6 of 6)" in err
    assert "last " in err and "log lines" in err
    assert "0" * 64 in err, "the log tail shows the pin that did not match"
    kept = [line for line in err.splitlines() if "build directory is kept at" in line]
    assert kept
    shutil.rmtree(kept[0].split("kept at ", 1)[1].split(":", 1)[0], ignore_errors=True)
