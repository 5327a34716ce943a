"""``orchestrator report --html DIR [RESULTS_FILE...]``: the chain page (issue 19, items 3 and 5).

The chain is the committed snapshot (what ``plan`` shows, offline). Its outputs cannot be built
here past ``simple-patch-1.0`` (no distfile can be downloaded), so the results files given are
stand-ins written in the real formats: a verify results file by ``ResultsFile`` itself, a pins
report as ``verify --against-live-bootstrap --json`` prints it, and a DDC result.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.verify.ddc import load_verdict
from orchestrator.verify.pins import PinCheck, current_system
from orchestrator.verify.pins import Report as PinsReport
from orchestrator.verify.report import PathResult, Report, Status, Summary, now
from orchestrator.verify.results_file import ResultsFile
from tests.helpers_browser import colour, dump_dom, needs_chromium, png_pixels, screenshot, text_of

REPO = Path(__file__).resolve().parent.parent
FAKE_HASH = "0123456789abcdfghijklmnpqrsvwxyz"  # 32 nix32 characters: a stand-in store hash


def ddc_doc(steps: dict[str, bool]) -> dict[str, object]:
    """A ``ddc.json`` of format 1 (docs/ddc.md) comparing these files; False: differs."""
    files = []
    for step, same in steps.items():
        target = {"sha256": "a" * 64, "size": 1, "path": f"/nix/store/{FAKE_HASH}-x"}
        rebuilt = dict(target, sha256=("a" if same else "b") * 64)
        tool = step.rsplit("/", 1)[-1] if "/bin/" in step else None
        files.append(
            {"step": step, "tool": tool, "target": target, "rebuilt": rebuilt, "identical": same}
        )
    differing = [s for s, same in steps.items() if not same]
    return {
        "format": 1,
        "check": "ddc-stage0",
        "target": "x86",
        "host": "amd64",
        "files": files,
        "compared": len(files),
        "differing": differing,
        "identical": not differing,
        "skipped": [],
    }


def plan_attrs() -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "plan", "--json", "--bridge"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return [row["attr"] for row in json.loads(proc.stdout)]


def write_inputs(tmp: Path, attrs: list[str]) -> list[Path]:
    first, second, third = attrs[0], attrs[1], attrs[2]
    results = [
        PathResult(
            path=f"/nix/store/{FAKE_HASH}-lb-{first}",
            status=Status.reproducible,
            reason="NAR hash matches",
        ),
        PathResult(path=f"/nix/store/{FAKE_HASH}-lb-{second}", status=Status.differs),
    ]
    report = Report(mode="against-hydra", cache="https://cache.example", started=now())
    sink = ResultsFile(tmp / "verify.jsonl")
    sink.start(report)
    for r in results:
        sink.result(r)
    report.results = results
    report.summary = Summary.of(results)
    report.finished = now()
    sink.end(report)
    checks = [
        PinCheck(
            step=third,
            index=3,
            era="kaem",
            kind="installed",
            file="/usr/bin/x",
            expected="a" * 64,
            actual="b" * 64,
            status="mismatch",
            output=f"/nix/store/{FAKE_HASH}-lb-{third}",
            pinned_in="steps/x/x.checksums",
        )
    ]
    pins = PinsReport(target=third, checks=checks, counts={"mismatch": 1})
    (tmp / "pins.json").write_text(pins.model_dump_json())
    tools = ("M2-Planet", "M1", "hex2", "blood-elf", "kaem")
    ddc = ddc_doc({f"x86/bin/{t}": True for t in tools})
    (tmp / "ddc.json").write_text(json.dumps(ddc))
    return [tmp / "verify.jsonl", tmp / "pins.json", tmp / "ddc.json"]


def test_the_chain_page_holds_every_step_and_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attrs = plan_attrs()
    files = write_inputs(tmp_path, attrs)
    out = tmp_path / "site"
    assert main(["report", "--html", str(out), *map(str, files)]) == 0
    html = (out / "index.html").read_text()
    assert "<script" not in html and " src=" not in html and "<link" not in html
    states = dict(re.findall(r'data-attr="([^"]+)" data-state="([^"]+)"', html))
    assert list(states) == ["stage0", *attrs, "nixos-iso"]
    assert states["stage0"] == "ddc-equal"
    assert states[attrs[0]] == "hydra"
    assert states[attrs[1]] == "differs"
    assert states[attrs[2]] == "pins-differ"
    assert set(list(states.values())[4:]) == {"not-built"}
    assert (out / "verify-1.html").is_file()  # the results file's own page
    assert "5 of 5 compared bit-identical" in html


def test_ddc_that_differs_is_shown(tmp_path: Path) -> None:
    f = tmp_path / "ddc.json"
    f.write_text(json.dumps(ddc_doc({"x86/bin/hex2": False})))
    assert main(["report", "--html", str(tmp_path / "o"), str(f)]) == 0
    html = (tmp_path / "o" / "index.html").read_text()
    assert 'data-attr="stage0" data-state="ddc-differs"' in html
    assert "differ: x86/bin/hex2" in html


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ('{"target": "x", "checks": [{"step": 1}], "counts": {}}', "wrong schema"),
        ('{"target": "x", "checks": [', "invalid JSON"),
        ('{"pairs": []}', "unknown shape"),
        (
            '{"event": "start", "mode": "against-hydra", "started": "t"}\n{"event": "result"\n',
            "bad results line",
        ),
        ('{"event": "result", "path": "/nix/store/x", "status": "reproducible"}\n', "no start"),
        ("", "invalid JSON"),
    ],
)
def test_bad_results_files_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expect: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "site"
    code = main(["report", "--html", str(out), str(bad)])
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert code == 2
    assert str(bad) in err and expect in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing half-written


def test_a_missing_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "--html", str(tmp_path / "o"), str(tmp_path / "nope.jsonl")])
    assert code == 2
    assert "nope.jsonl" in capsys.readouterr().err


@needs_chromium
def test_the_chain_page_in_a_real_browser(tmp_path: Path) -> None:
    attrs = plan_attrs()
    files = write_inputs(tmp_path, attrs)
    out = tmp_path / "site"
    assert main(["report", "--html", str(out), *map(str, files)]) == 0
    dom = dump_dom(out / "index.html", tmp_path / "profile")
    cells = re.findall(r'<code class="attr">([^<]+)</code>', dom)
    assert cells == ["stage0", *attrs, "nixos-iso"]  # every step, in plan's order
    text = text_of(dom)
    assert "hex0-seed" in text and "kaem-optional-seed" in text
    _, _, pixels = png_pixels(
        screenshot(out / "index.html", tmp_path / "profile", tmp_path / "s.png")
    )
    seen = set(pixels)
    assert len(seen) > 50, "a blank page"
    for css in ("#9ec5fe", "#8fd3c9", "#f4a3a3", "#eeeeee"):  # DDC, Hydra, differs, not built
        assert colour(css) in seen, css
    # the verify results file's own page renders too
    vdom = dump_dom(out / "verify-1.html", tmp_path / "profile")
    for p in (f"/nix/store/{FAKE_HASH}-lb-{attrs[0]}", f"/nix/store/{FAKE_HASH}-lb-{attrs[1]}"):
        assert p in vdom
    assert "reproducible" in vdom and "differs" in vdom


def _valid_output(installable: str, flake_args: list[str]) -> str | None:
    """The output path of ``installable`` when it is valid in the local store, else None."""
    proc = subprocess.run(
        [
            *("nix", "--extra-experimental-features", "nix-command flakes"),
            *("--option", "substituters", "", "eval", "--raw", f"{installable}.outPath"),
            *flake_args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    path = proc.stdout.strip()
    info = ["nix", "--extra-experimental-features", "nix-command", "path-info", path]
    return path if subprocess.run(info, capture_output=True, check=False).returncode == 0 else None


def test_eval_marks_the_outputs_valid_in_the_store(tmp_path: Path, pinned_source: Path) -> None:
    """--eval: a step whose output is valid in the local store is built, with its store path;
    one whose output is not is not-built (whichever the store holds on this machine)."""
    out = tmp_path / "site"
    assert (
        main(["report", "--html", str(out), "--eval", "--live-bootstrap", str(pinned_source)]) == 0
    )
    html = (out / "index.html").read_text()
    states = dict(re.findall(r'data-attr="([^"]+)" data-state="([^"]+)"', html))
    flake_args = ["--override-input", "live-bootstrap", f"path:{pinned_source}"]
    ddc = _valid_output(f"{REPO}#checks.{current_system()}.ddc-stage0", flake_args)
    for attr in ("stage0", plan_attrs()[0]):
        proc = subprocess.run(
            [
                "nix",
                "--extra-experimental-features",
                "nix-command flakes",
                "--option",
                "substituters",
                "",
                "eval",
                "--raw",
                f'{REPO}#"{attr}".outPath',
                *flake_args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        path = proc.stdout.strip()
        valid = (
            subprocess.run(
                ["nix", "--extra-experimental-features", "nix-command", "path-info", path],
                capture_output=True,
            ).returncode
            == 0
        )
        expected = "built" if valid else "not-built"
        if attr == "stage0" and ddc is not None:  # the DDC check's verdict colours stage0
            expected = "ddc-equal" if load_verdict(ddc).identical else "ddc-differs"
        assert states[attr] == expected, (attr, path)
        assert (path in html) == valid


def test_the_ddc_checks_output_directory(tmp_path: Path) -> None:
    """The check's output as given (a directory holding ddc.json, one entry per compared file,
    and its own overall verdict), equal and then with one file differing."""
    check = tmp_path / "ddc-stage0"
    check.mkdir()
    steps = {f"x86/artifact/{t}": True for t in ("hex0", "hex2-1", "M2")}
    (check / "ddc.json").write_text(json.dumps(ddc_doc(steps)))
    assert main(["report", "--html", str(tmp_path / "a"), str(check)]) == 0
    html = (tmp_path / "a" / "index.html").read_text()
    assert 'data-attr="stage0" data-state="ddc-equal"' in html
    assert "3 of 3 compared bit-identical" in html
    steps["x86/artifact/hex2-1"] = False
    (check / "ddc.json").write_text(json.dumps(ddc_doc(steps)))
    assert main(["report", "--html", str(tmp_path / "b"), str(check)]) == 0
    html = (tmp_path / "b" / "index.html").read_text()
    assert 'data-attr="stage0" data-state="ddc-differs"' in html
    assert "differ: x86/artifact/hex2-1" in html


def test_a_bad_end_line_of_several_caches(tmp_path: Path) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text(
        '{"event": "start", "schema_version": 2, "mode": "against-hydra", "started": "t"}\n'
        '{"event": "end", "finished": "t", "disagreeing_caches": 7}\n'
    )
    assert main(["report", "--html", str(tmp_path / "o"), str(bad)]) == 2
    assert not (tmp_path / "o").exists()


def test_the_seed_audit_reads_the_two_seeds(tmp_path: Path, pinned_source: Path) -> None:
    assert (
        main(["report", "--html", str(tmp_path / "o"), "--live-bootstrap", str(pinned_source)]) == 0
    )
    html = (tmp_path / "o" / "index.html").read_text()
    seeds = re.search(r'<table id="seeds">.*?</table>', html, re.DOTALL).group(0)  # type: ignore[union-attr]
    rows = re.findall(r'<td class="num">(\d+)</td><td><code>([0-9a-f]{64})</code>', seeds)
    base = pinned_source / "seed/stage0-posix/bootstrap-seeds/POSIX/x86"

    expected = [
        (str(len(b)), hashlib.sha256(b).hexdigest())
        for b in ((base / "hex0-seed").read_bytes(), (base / "kaem-optional-seed").read_bytes())
    ]
    assert rows == expected and [r[0] for r in rows] == ["181", "632"]
    assert "(813 bytes)" in html
