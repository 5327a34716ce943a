"""``verify --against-hydra`` with several caches (issue 19, item 1): real Nix builds, three real
binary caches made by ``nix copy``, each signed by its own ``nix key generate-secret`` key and
served over HTTP on 127.0.0.1. One of them lies with a valid signature: it signed an earlier,
different build of a nondeterministic derivation.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.verify.consensus import ALL_AGREE, CACHES_DISAGREE, NO_TRUSTED_ANSWER
from orchestrator.verify.report import SCHEMA_VERSION, SCHEMA_VERSION_CACHES, Report
from orchestrator.verify.results_file import load_results
from tests.helpers_browser import colour, dump_dom, needs_chromium, png_pixels, screenshot, text_of
from tests.helpers_cache import (
    build,
    copy_to_cache,
    generate_key,
    needs_nix,
    nix,
    serve,
    unique_salt,
    write_derivations,
)

pytestmark = needs_nix


@dataclass
class Caches:
    honest: Path  # every path, as built here
    partial: Path  # all but the first of ``many``
    liar: Path  # ``nondet`` from an earlier build: another NarHash, validly signed
    keys: dict[str, str]  # cache name -> public key
    many: list[str]
    nondet: str


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Caches:
    tmp = tmp_path_factory.mktemp("verify-caches")
    salt = unique_salt()
    file = write_derivations(tmp)
    secrets, keys = {}, {}
    for name in ("honest", "partial", "liar"):
        secrets[name], keys[name] = generate_key(tmp, f"test-{name}-{salt}")
    many = list(build(file, "many", salt=salt, n="3").values())
    nondet = build(file, "nondet", salt=salt)["out"]
    copy_to_cache([*many, nondet], tmp / "liar", secrets["liar"])
    nix("store", "delete", nondet)
    build(file, "nondet", salt=salt)  # same path, other bytes: what this machine built last
    copy_to_cache([*many, nondet], tmp / "honest", secrets["honest"])
    copy_to_cache([*many[1:], nondet], tmp / "partial", secrets["partial"])
    return Caches(tmp / "honest", tmp / "partial", tmp / "liar", keys, many, nondet)


def run(
    capsys: pytest.CaptureFixture[str], urls: list[str], keys: list[str], *args: str
) -> tuple[int, Report, str]:
    argv = ["verify", "--against-hydra", "--json"]
    for u in urls:
        argv += ["--cache", u]
    for k in keys:
        argv += ["--trusted-key", k]
    code = main([*argv, *args])
    out, err = capsys.readouterr()
    return code, Report.model_validate_json(out), err


def test_three_caches_one_lying(
    caches: Caches, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(caches.honest) as a, serve(caches.partial) as b, serve(caches.liar) as c:
        urls = [a.url, b.url, c.url]
        code, report, err = run(
            capsys,
            urls,
            list(caches.keys.values()),
            *caches.many,
            caches.nondet,
            "--results",
            str(tmp_path / "r.jsonl"),
            "--html",
            str(tmp_path / "page"),
        )
    assert code == 1, err
    assert report.schema_version == SCHEMA_VERSION_CACHES
    assert report.disagreeing_caches == [c.url]
    assert c.url in err  # named on stderr too
    by = {r.path: r for r in report.results}
    lie = by[caches.nondet]
    assert lie.status.value == "differs"
    assert lie.consensus == CACHES_DISAGREE
    assert [(v.cache, v.status.value) for v in lie.per_cache or []] == [
        (a.url, "reproducible"),
        (b.url, "reproducible"),
        (c.url, "differs"),
    ]
    # the liar's signature is valid: it is its own trusted key that signed the other hash
    liar_v = (lie.per_cache or [])[2]
    assert liar_v.signed_by == [caches.keys["liar"].split(":")[0]]
    assert liar_v.remote_nar_hash != (lie.per_cache or [])[0].remote_nar_hash
    first = by[caches.many[0]]  # not in the partial cache
    assert first.status.value == "reproducible" and first.consensus == ALL_AGREE
    assert [v.status.value for v in first.per_cache or []] == [
        "reproducible",
        "not-in-cache",
        "reproducible",
    ]
    for p in caches.many[1:]:
        assert by[p].consensus == ALL_AGREE
        assert {v.status.value for v in by[p].per_cache or []} == {"reproducible"}
    # each cache's own summary
    sums = {s.url: s.summary for s in report.caches or []}
    assert (sums[a.url].reproducible, sums[a.url].differs) == (4, 0)
    assert (sums[b.url].reproducible, sums[b.url].not_in_cache) == (3, 1)
    assert (sums[c.url].reproducible, sums[c.url].differs) == (3, 1)
    assert report.summary.differs == 1 and report.summary.exit_code == 1
    # the results file holds the combined verdicts
    back = load_results(tmp_path / "r.jsonl")
    assert back.schema_version == SCHEMA_VERSION_CACHES
    assert {r.path: r.consensus for r in back.results} == {
        r.path: r.consensus for r in report.results
    }
    # and the page names every cache, path and verdict (the browser test looks at it rendered)
    html = (tmp_path / "page" / "index.html").read_text()
    for u in urls:
        assert u in html
    for p in [*caches.many, caches.nondet]:
        assert p in html
    assert "caches-disagree" in html and "not-in-cache" in html


def test_honest_caches_agree_exit_0(caches: Caches, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(caches.honest) as a, serve(caches.partial) as b:
        code, report, _ = run(
            capsys,
            [a.url, b.url],
            [caches.keys["honest"], caches.keys["partial"]],
            *caches.many,
            caches.nondet,
            "--no-results",
        )
    assert code == 0
    assert report.disagreeing_caches == []
    assert {r.consensus for r in report.results} == {ALL_AGREE}


def test_a_cache_without_its_key_is_untrusted_not_a_vote(
    caches: Caches, capsys: pytest.CaptureFixture[str]
) -> None:
    """The liar's key not given: its narinfos are untrusted (exit 2), and it is not named as
    disagreeing: only a trusted signature over another NarHash is a disagreement."""
    with serve(caches.honest) as a, serve(caches.liar) as c:
        code, report, _ = run(
            capsys, [a.url, c.url], [caches.keys["honest"]], caches.nondet, "--no-results"
        )
    assert code == 2
    assert report.disagreeing_caches == []
    (r,) = report.results
    assert r.status.value == "untrusted"
    assert r.consensus == ALL_AGREE
    assert [v.status.value for v in r.per_cache or []] == ["reproducible", "untrusted"]


def test_no_cache_has_it(caches: Caches, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(caches.partial) as b, serve(caches.liar / "nonexistent") as d:
        code, report, _ = run(
            capsys, [b.url, d.url], list(caches.keys.values()), caches.many[0], "--no-results"
        )
    assert code == 0
    (r,) = report.results
    assert r.status.value == "not-in-cache" and r.consensus == NO_TRUSTED_ANSWER


def test_one_cache_keeps_schema_version_1(
    caches: Caches, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(caches.honest) as a:
        code, report, _ = run(
            capsys, [a.url], [caches.keys["honest"]], caches.many[0], "--no-results"
        )
    assert code == 0
    assert report.schema_version == SCHEMA_VERSION == 1
    assert report.caches is None and report.results[0].per_cache is None


def test_a_cache_named_twice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("verify", "--against-hydra", "--cache", "file:///x", "--cache", "file:///x"),
            *("--json", "/nix/store/00000000000000000000000000000000-x", "--no-results"),
        ]
    )
    assert code == 2
    assert "twice" in json.loads(capsys.readouterr().out)["error"]


@needs_chromium
def test_the_page_in_a_real_browser(
    caches: Caches, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Headless Chromium renders the --html page from file://: the DOM holds each path with each
    cache's verdict, and the screenshot shows the verdict colours (not a blank page)."""
    page_dir = tmp_path / "page"
    with serve(caches.honest) as a, serve(caches.partial) as b, serve(caches.liar) as c:
        code, report, _ = run(
            capsys,
            [a.url, b.url, c.url],
            list(caches.keys.values()),
            *caches.many,
            caches.nondet,
            "--no-results",
            "--html",
            str(page_dir),
        )
    assert code == 1
    page = page_dir / "index.html"
    html = page.read_text()
    assert "<script" not in html and " src=" not in html and "<link" not in html  # nothing to load
    dom = dump_dom(page, tmp_path / "profile")
    text = text_of(dom)
    rows = re.findall(r'<tr class="result">(.*?)</tr>', dom, re.DOTALL)
    assert len(rows) == len(report.results) == 4
    for r in report.results:
        row = next(x for x in rows if r.path in x)
        cells = re.findall(r'class="badge s-([a-z-]+)"', row)
        # one badge per cache, then the combined verdict
        assert cells == [v.status.value for v in r.per_cache or []] + [r.status.value]
    assert report.summary.line() in text
    assert f"{c.url}" in re.search(r'id="disagreeing".*?</p>', dom, re.DOTALL).group(0)  # type: ignore[union-attr]
    _, _, pixels = png_pixels(screenshot(page, tmp_path / "profile", tmp_path / "shot.png"))
    seen = set(pixels)
    assert len(seen) > 50, "a blank page"
    assert colour("#b7e4b0") in seen  # reproducible
    assert colour("#f4a3a3") in seen  # differs


@pytest.mark.parametrize("tool", ["builtin", "diffoscope"])
def test_the_page_shows_the_difference(
    caches: Caches, tmp_path: Path, capsys: pytest.CaptureFixture[str], tool: str
) -> None:
    """--diff with --html: the liar's NAR is fetched and compared; the page shows which file
    differs (built-in), or links diffoscope's own HTML report (when diffoscope is installed)."""
    if tool == "diffoscope" and shutil.which("diffoscope") is None:
        pytest.skip("diffoscope is not installed (bash .ci/setup installs diffoscope-minimal)")
    page_dir = tmp_path / "page"
    with serve(caches.honest) as a, serve(caches.liar) as c:
        code, report, _ = run(
            capsys,
            [a.url, c.url],
            [caches.keys["honest"], caches.keys["liar"]],
            caches.nondet,
            "--no-results",
            "--diff",
            "--diff-tool",
            tool,
            "--html",
            str(page_dir),
        )
    assert code == 1
    (r,) = report.results
    assert r.diff is not None and r.diff.tool == tool
    assert [(f.path, f.change) for f in r.diff.files] == [("stamp", "content")]
    html = (page_dir / "index.html").read_text()
    assert 'id="diff-1"' in html and ">stamp<" in html
    extra = sorted(p.name for p in page_dir.iterdir())
    if tool == "builtin":
        assert r.diff.html is None and extra == ["index.html"]
    else:
        assert extra == ["index-diffoscope-1.html", "index.html"]
        assert 'href="index-diffoscope-1.html"' in html
        report_page = (page_dir / "index-diffoscope-1.html").read_text()
        assert "diffoscope" in report_page and "stamp" in report_page
