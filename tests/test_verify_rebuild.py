"""``verify --rebuild``: real ``nix build --rebuild`` of a deterministic and a nondeterministic
derivation, reported in the same format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.support.cache import build, drv_path, needs_nix, nix, unique_salt, write_derivations

pytestmark = needs_nix


def rebuild(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["verify", "--rebuild", "--sandbox", "false", "--no-results", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_deterministic_build_is_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_derivations(tmp_path)
    salt = unique_salt()
    out = build(f, "toolA", salt=salt)["out"]
    # a store path TARGET is rebuilt through its deriver (a bare store path would be a no-op)
    code, report = rebuild(capsys, out)
    assert report["mode"] == "rebuild"
    (r,) = report["results"]
    assert (r["kind"], r["path"], r["status"]) == ("rebuild", out, "reproducible")
    assert code == 0


def test_nondeterministic_build_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_derivations(tmp_path)
    drv = drv_path(f, "nondet", salt=unique_salt())
    code, report = rebuild(capsys, "--diff", drv)  # not built yet: built once, then again
    assert code == 1
    (r,) = report["results"]
    assert r["status"] == "differs"
    assert r["theirs"] == r["path"] + ".check"
    assert r["local_nar_hash"] != r["remote_nar_hash"]
    assert [(d["path"], d["change"]) for d in r["diff"]["files"]] == [("stamp", "content")]
    nix("store", "delete", r["theirs"], check=False)


def test_unknown_deriver_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.write_text("just a source\n")
    added = nix("store", "add-path", str(src)).stdout.strip()
    code, report = rebuild(capsys, added)
    assert code == 2
    assert "knows no derivation" in report["results"][0]["reason"]
