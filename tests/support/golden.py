"""Golden cases: ``tests/golden/<kind>/<case>/input/`` -> the files ``expected/`` holds.

Each kind names one stage's printer or parser (:data:`RUNNERS`): it reads the case's input
directory and returns ``{relative path: text}``. A case passes when that equals ``expected/``
exactly (no file missing, none extra). ``pytest tests/test_golden.py --update-goldens`` rewrites
``expected/`` from the code; review the diff (git diff tests/golden) before committing it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from orchestrator.build.nixlog import BuildLog
from orchestrator.formats.narinfo import parse_narinfo
from orchestrator.generate.render import render_steps
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.checksums import parse_checksums
from orchestrator.upstream.manifest import parse_manifest
from orchestrator.upstream.plan import resolve
from orchestrator.upstream.profiles import Profile, parse_config
from orchestrator.upstream.sources import parse_sources
from orchestrator.upstream.tree import SourceTree
from tests.support.stage0 import parse_script

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE_OPTION = "--update-goldens"

Files = dict[str, str]


def _json(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=_plain) + "\n"


def _plain(value: object) -> object:
    """JSON for what json cannot write itself: bytes (digests, signatures) as hexadecimal."""
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"no JSON for {type(value).__name__}")


def _printer(case: Path) -> Files:
    """The printer: a live-bootstrap tree -> steps/ (render_steps sees only the model)."""
    tree = SourceTree.open(case, commit="0" * 40)
    profile = case / "bootstrap.cfg"
    if profile.is_file():
        chain = load_chain(
            tree, Profile(name="golden", variables=parse_config(profile.read_text(), "cfg"))
        )
    else:
        chain = load_chain(tree)
    return render_steps(chain)


def _manifest(case: Path) -> Files:
    manifest = parse_manifest((case / "manifest").read_text(), Path("steps/manifest"))
    return {"manifest.json": _json(manifest.model_dump(mode="json"))}


def _plan(case: Path) -> Files:
    manifest = parse_manifest((case / "manifest").read_text(), Path("steps/manifest"))
    cfg = parse_config((case / "bootstrap.cfg").read_text(), "bootstrap.cfg")
    plan = resolve(manifest, Profile(name="golden", variables=cfg))
    return {"plan.json": _json(plan.model_dump(mode="json"))}


def _sources(case: Path) -> Files:
    lines = parse_sources((case / "sources").read_text(), "steps/pkg/sources")
    return {"sources.json": _json([s.model_dump(mode="json") for s in lines])}


def _checksums(case: Path) -> Files:
    out: Files = {}
    for path in sorted(case.iterdir()):
        names = "file" if path.name == "SHA256SUMS.pkgs" else "path"
        pins = parse_checksums(path.read_text(), path.name, names=names)
        out[f"{path.name}.json"] = _json([p.model_dump(mode="json") for p in pins])
    return out


def _nixlog(case: Path) -> Files:
    """Nix's internal-json log folded into the state the build view draws (time = line number)."""
    log = BuildLog()
    lines = (case / "log.jsonl").read_text().splitlines(keepends=True)
    for n, line in enumerate(lines, 1):
        log.feed_line(line, float(n))
    log.finish(float(len(lines) + 1))
    builds = []
    for rec in log.builds.values():
        record = asdict(rec)
        record["tail"] = list(rec.tail)
        builds.append(record)
    state = {
        "builds": builds,
        "progress": asdict(log.progress),
        "errors": log.errors,
        "failed": log.failed,
        "text": log.text,
    }
    return {"state.json": _json(state)}


def _kaem(case: Path) -> Files:
    env = json.loads((case / "env.json").read_text()) if (case / "env.json").is_file() else {}
    commands = parse_script((case / "script.kaem").read_text(), "script.kaem", env)
    return {"commands.json": _json([{"line": line, "tokens": tokens} for tokens, line in commands])}


def _narinfo(case: Path) -> Files:
    info = parse_narinfo((case / "x.narinfo").read_text(), source="x.narinfo")
    return {"narinfo.json": _json(info.model_dump())}


def _profile(case: Path) -> Files:
    return {"variables.json": _json(parse_config((case / "bootstrap.cfg").read_text(), "cfg"))}


RUNNERS: dict[str, Callable[[Path], Files]] = {
    "printer": _printer,
    "manifest": _manifest,
    "plan": _plan,
    "sources": _sources,
    "checksums": _checksums,
    "nixlog": _nixlog,
    "kaem": _kaem,
    "narinfo": _narinfo,
    "profile": _profile,
}


def cases() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*/*") if p.is_dir())


def produce(case: Path) -> Files:
    return RUNNERS[case.parent.name](case / "input")


def read_expected(case: Path) -> Files:
    expected = case / "expected"
    if not expected.is_dir():
        return {}
    return {
        p.relative_to(expected).as_posix(): p.read_text()
        for p in sorted(expected.rglob("*"))
        if p.is_file()
    }


def problems(case: Path, got: Files) -> list[str]:
    """What keeps ``got`` from being ``case``'s expected output: none when they are equal."""
    expected = read_expected(case)
    if not expected:
        name = case.relative_to(case.parent.parent)
        hint = f"run `pytest tests/test_golden.py {UPDATE_OPTION}` and review it"
        return [f"{name} has no expected output: {hint}"]
    out = [f"expected/{rel} is missing" for rel in sorted(set(got) - set(expected))]
    out += [
        f"expected/{rel} is stale (nothing produces it)" for rel in sorted(set(expected) - set(got))
    ]
    out += [
        f"{rel} differs from expected/{rel}"
        for rel in sorted(set(got) & set(expected))
        if got[rel] != expected[rel]
    ]
    return out


def write_expected(case: Path, files: Files) -> None:
    """``expected/`` becomes exactly ``files`` (stale files removed)."""
    expected = case / "expected"
    for p in sorted(expected.rglob("*"), reverse=True) if expected.is_dir() else []:
        if p.is_file():
            p.unlink()
        else:
            p.rmdir()
    for rel, text in files.items():
        target = expected / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
