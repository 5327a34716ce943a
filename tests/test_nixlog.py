"""The internal-json parser, on stderr captured from real ``nix build`` runs.

Every derivation here is built for real in the Nix sandbox with a static busybox as its builder
(Debian's busybox-static, copied into a throw-away flake). A fresh nonce per test makes Nix build
rather than answer from the store. The helpers are shared with the build CLI and audit tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestrator import nixstr
from orchestrator.build.nixlog import (
    ActivityType,
    BuildLog,
    MsgEvent,
    ResultEvent,
    StartEvent,
    StopEvent,
    TextLine,
    parse_line,
    store_name,
)

NIX_FLAGS = [
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
    "--option",
    "sandbox",
    "true",
]
BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"]


def _need(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why + " (CI must install it: see .ci/setup)")
        pytest.skip(why)


def is_static_elf(path: Path) -> bool:
    """An ELF file without a PT_INTERP program header (64-bit little-endian)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    types = [
        int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little")
        for i in range(phnum)
    ]
    return 3 not in types


def busybox_binary() -> Path:
    _need(shutil.which("nix") is not None, "nix is not installed")
    for c in BUSYBOX_CANDIDATES:
        p = Path(c)
        if p.is_file() and is_static_elf(p.resolve()):
            return p.resolve()
    _need(False, "needs a static busybox (apt-get install -y busybox-static)")
    raise AssertionError  # unreachable


def nix_string(s: str) -> str:
    # JSON is not Nix: its \uXXXX escapes mean nothing to Nix, so quote with the real module
    return nixstr.nix_string(s)


def write_flake(
    root: Path,
    steps: list[tuple[str, str]],
    *,
    nonce: str | None = None,
    extra: str = "",
    extra_packages: str = "",
) -> str:
    """A flake whose packages are a linear chain: each (attr, shell script) depends on the one
    before it. Returns its ``path:`` reference. ``extra`` is spliced into the ``let`` block."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    if not (root / "bin" / "busybox").exists():
        shutil.copyfile(busybox_binary(), root / "bin" / "busybox")
        (root / "bin" / "busybox").chmod(0o755)
    nonce = nonce or uuid.uuid4().hex
    lets = []
    prev = "null"
    for i, (attr, script) in enumerate(steps):
        lets.append(f"    s{i} = mk {nix_string(attr)} {nix_string(script)} {prev};")
        prev = f"s{i}"
    pkgs = " ".join(f"{nix_string(attr)} = s{i};" for i, (attr, _) in enumerate(steps))
    (root / "flake.nix").write_text(
        f"""{{
  outputs = {{ self }}:
  let
    bb = "${{./bin}}/busybox";
    mk = name: script: dep: derivation {{
      inherit name dep;
      system = "x86_64-linux";
      builder = bb;
      args = [ "sh" "-c" script ];
      PATH = "${{./bin}}";
      nonce = {nix_string(nonce)};
    }};
{extra}
{chr(10).join(lets)}
  in {{
    packages.x86_64-linux = {{ {pkgs} {extra_packages} }};
  }};
}}
"""
    )
    # busybox's applets: `sh -c` finds echo/seq/sleep as builtins or via the bin dir
    return f"path:{root}"


def capture(flake: str, attr: str, *extra: str) -> tuple[int, list[str]]:
    """``nix build -L --log-format internal-json``: exit code and stderr lines."""
    proc = subprocess.run(
        [
            "nix",
            *NIX_FLAGS,
            "build",
            "-L",
            "--log-format",
            "internal-json",
            "--no-link",
            nixstr.flake_installable(flake, [attr]),
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stderr.splitlines()


def fold(lines: list[str]) -> BuildLog:
    log = BuildLog()
    for i, line in enumerate(lines):
        log.feed_line(line, float(i))
    log.finish(float(len(lines)))
    return log


# -- tests ---------------------------------------------------------------------------------------
def test_successful_chain(tmp_path: Path) -> None:
    flake = write_flake(
        tmp_path / "f",
        [
            (
                "first-1.0-pass1",
                "for i in 1 2 3; do echo alpha $i; done; echo to-stderr >&2; echo ok > $out",
            ),
            ("second-1.0-pass1", "echo beta; echo done > $out"),
        ],
    )
    rc, lines = capture(flake, "second-1.0-pass1")
    assert rc == 0, "\n".join(lines[-20:])
    events = [parse_line(line) for line in lines]
    assert lines and all(not isinstance(e, TextLine) for e in events), "every line is an @nix event"
    starts = [e for e in events if isinstance(e, StartEvent) and e.type == ActivityType.BUILD]
    assert [store_name(str(e.fields[0])) for e in starts] == ["first-1.0-pass1", "second-1.0-pass1"]
    assert all(str(e.fields[0]).endswith(".drv") for e in starts)

    log = fold(lines)
    assert [r.name for r in log.builds.values()] == ["first-1.0-pass1", "second-1.0-pass1"]
    assert [r.status for r in log.builds.values()] == ["built", "built"]
    first, second = log.builds.values()
    assert list(first.tail) == ["alpha 1", "alpha 2", "alpha 3", "to-stderr"]
    assert list(second.tail) == ["beta"]
    assert first.lines == 4
    assert first.finished is not None and first.finished <= second.started
    assert (log.progress.done, log.progress.expected, log.progress.failed) == (2, 2, 0)
    assert not log.failed and not log.errors


def test_failing_build_keep_failed(tmp_path: Path) -> None:
    flake = write_flake(
        tmp_path / "f",
        [
            ("base-1.0-pass1", "echo fine > $out"),
            ("broken-2.0-pass2", "echo going; echo bad thing >&2; echo kept > marker; exit 3"),
        ],
    )
    rc, lines = capture(flake, "broken-2.0-pass2", "--keep-failed")
    assert rc != 0
    log = fold(lines)
    base, broken = log.builds.values()
    assert base.status == "built" and broken.status == "failed"
    assert broken.exit_code == 3
    assert list(broken.tail) == ["going", "bad thing"]
    assert broken.drv_path in log.failed
    assert "failed with exit code 3" in (broken.error or "")
    assert log.progress.failed == 1
    assert broken.kept_dir is not None
    kept = Path(broken.kept_dir)
    try:
        assert kept.is_dir() and (kept / "marker").read_text().strip() == "kept"
        assert kept.name.startswith("nix-build-broken-2.0-pass2.drv-")
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_dependency_failure_is_named(tmp_path: Path) -> None:
    flake = write_flake(
        tmp_path / "f",
        [("early-1-pass1", "echo nope; exit 7"), ("late-1-pass1", "echo never > $out")],
    )
    rc, lines = capture(flake, "late-1-pass1")
    assert rc != 0
    log = fold(lines)
    assert [r.name for r in log.builds.values()] == ["early-1-pass1"], "the dependent never starts"
    assert any(store_name(d) == "late-1-pass1" for d in log.dependency_failed)
    assert log.builds[next(iter(log.builds))].exit_code == 7


def test_status_is_known_at_stop(tmp_path: Path) -> None:
    """The live view reports a failure when the build activity stops, before Nix's message."""
    flake = write_flake(tmp_path / "f", [("quick-1-pass1", "exit 5")])
    rc, lines = capture(flake, "quick-1-pass1")
    assert rc != 0
    log = BuildLog()
    for i, line in enumerate(lines):
        ev = log.feed_line(line, float(i))
        if isinstance(ev, StopEvent) and ev.id in log._by_activity:
            assert log._by_activity[ev.id].status == "failed"
            assert not log.failed, "Nix names the derivation only after the stop"
            break
    else:
        raise AssertionError("no stop event for the build")


def test_line_variants() -> None:
    assert parse_line("plain text\n") == TextLine(text="plain text")
    assert isinstance(parse_line("@nix {not json"), TextLine)
    assert isinstance(parse_line('@nix {"action":"teleport","id":1}'), TextLine)
    ev = parse_line('@nix {"action":"result","id":9,"type":101,"fields":["x"]}')
    assert isinstance(ev, ResultEvent) and ev.fields == ["x"]
    ev = parse_line('@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m boom"}')
    assert isinstance(ev, MsgEvent) and ev.text == "error: boom"
    assert store_name("/nix/store/" + "a" * 32 + "-mes-0.27.1-pass1.drv") == "mes-0.27.1-pass1"
    assert store_name("/nix/store/" + "0" * 32 + "-bzip2-1.0.8.tar.gz") == "bzip2-1.0.8.tar.gz"
