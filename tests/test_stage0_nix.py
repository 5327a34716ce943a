"""The kaem -> derivations translation, built for real by Nix in the sandbox.

1. A small synthetic chain that CI can run: its kaem scripts are written here, translated by
   orchestrator.stage0.translate into JSON and built with the real nix/stage0.nix. **Stand-ins:** Debian's
   `busybox-static` and `mescc-tools` (1.4.0: kaem, M1, hex2, catm) stand in for the seeds and
   the chain's programs, because the real stage0 sources are code that CI does not have. The
   Debian mescc-tools are dynamically linked, so only this test exposes the host's dynamic
   loader and libc to the sandbox (extra-sandbox-paths); the real chain needs nothing.
2. The real `.#stage0` and `.#stage0-amd64` from the hex0 seeds, with their self-reproduction
   and answers checks, when LIVE_BOOTSTRAP_CHECKOUT points at a live-bootstrap checkout with
   submodules (skipped otherwise: it is code the fixtures do not carry).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.stage0 import translate as stage0
from orchestrator.upstream.tree import SourceTree

from .conftest import LB_FIXTURES, NIX_FLAGS, PINNED, REPO

STAND_INS = {"busybox": "busybox", "kaem": "kaem", "M1": "M1", "hex2": "hex2", "catm": "catm"}
BUSYBOX_APPLETS = ("sha256sum", "mkdir", "cp", "chmod", "match")


def _which_all() -> dict[str, str]:
    found = {name: shutil.which(prog) for name, prog in STAND_INS.items()}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        msg = f"stand-in tools missing: {missing} (apt-get install -y busybox-static mescc-tools)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    if b"/lib64/ld-linux" in Path(found["busybox"] or "").read_bytes()[:4096]:
        pytest.skip("busybox is dynamically linked: install busybox-static")
    return {k: v for k, v in found.items() if v}


def _sandbox_paths() -> str:
    """The dynamic loader and libc directories the Debian stand-ins need (test only)."""
    paths = []
    for p in ("/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
        if os.path.isdir(p):
            real = os.path.realpath(p)
            paths.append(p if real == p else f"{p}={real}")
    return " ".join(paths)


SEED_KAEM = """\
# synthetic seed script (run by the seed kaem): the first builder is a seed
./bootstrap-seeds/POSIX/AMD64/busybox cp ./bootstrap-seeds/POSIX/AMD64/{hex0_from} ./AMD64/artifact/hex0
./bootstrap-seeds/POSIX/AMD64/busybox cp ./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed ./AMD64/artifact/kaem-0
./bootstrap-seeds/POSIX/AMD64/busybox cp ./bootstrap-seeds/POSIX/AMD64/catm ./AMD64/artifact/catm
./bootstrap-seeds/POSIX/AMD64/busybox cp ./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed ./AMD64/bin/kaem
"""

KAEM_RUN = """\
# synthetic kaem.run: variables, alias, continuation, nested kaem, cd, if, check, exec
ARCH="amd64"
ARCH_DIR="AMD64"
PATH=./${ARCH_DIR}/bin
BLOOD_FLAG=" "
alias CATM="./${ARCH_DIR}/artifact/catm"
CATM ./${ARCH_DIR}/artifact/prog.M1 ./${ARCH_DIR}/defs.M1 \\
\t./${ARCH_DIR}/prog.M1 # trailing comment
./bootstrap-seeds/POSIX/AMD64/M1 --architecture ${ARCH} ${BLOOD_FLAG} --little-endian -f ./${ARCH_DIR}/artifact/prog.M1 -o ./${ARCH_DIR}/artifact/prog.hex2
./bootstrap-seeds/POSIX/AMD64/hex2 --architecture ${ARCH} --little-endian --base-address 0x00600000 \\
\t-f ./${ARCH_DIR}/artifact/prog.hex2 -o ./${ARCH_DIR}/bin/prog
cd ${ARCH_DIR}
./artifact/kaem-0 --verbose --strict --file ./sub.kaem
cd ..
if match x${ARCH} xamd64; then
  ./AMD64/artifact/catm ./AMD64/bin/flag ./AMD64/artifact/copy.txt
else
  ./AMD64/artifact/catm ./AMD64/bin/flag ./AMD64/no.txt
fi
./AMD64/bin/sha256sum -c amd64.answers
exec ./AMD64/bin/kaem --verbose --strict --file ./after.kaem
./AMD64/artifact/catm ./AMD64/bin/never ./AMD64/no.txt
"""

SUB_KAEM = """\
# nested: runs in AMD64/ with the parent's variables
../bootstrap-seeds/POSIX/AMD64/busybox cp ./yes.txt ./artifact/copy.txt
"""


def build_synthetic_tree(
    root: Path, tools: dict[str, str], *, hex0_from: str = "hex0-seed", corrupt: str | None = None
) -> dict[str, bytes]:
    """Write the synthetic live-bootstrap tree; return the expected bytes of each bin/ tool,
    computed by running the same commands natively."""
    base = root / "seed" / "stage0-posix"
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "manifest").write_text("")
    seeds = base / "bootstrap-seeds" / "POSIX" / "AMD64"
    seeds.mkdir(parents=True)
    for name in ("busybox", "M1", "hex2", "catm"):
        shutil.copy(tools[name], seeds / name)
    shutil.copy(tools["kaem"], seeds / "kaem-optional-seed")
    (seeds / "hex0-seed").write_bytes(b"synthetic hex0 seed\n")
    (base / "AMD64" / "artifact").mkdir(parents=True)
    (base / "AMD64" / "artifact" / "README").write_text("artifacts\n")
    (base / "AMD64" / "bin").mkdir()
    for applet in BUSYBOX_APPLETS:  # busybox runs the applet its file is named after
        shutil.copy(tools["busybox"], base / "AMD64" / "bin" / applet)
    (base / "M2libc" / "x86").mkdir(parents=True)
    (base / "M2libc" / "README").write_text("synthetic M2libc\n")
    (base / "M2libc" / "x86" / "defs.M1").write_text("DEFINE NOP 90\n")
    (base / "AMD64" / "defs.M1").write_text("DEFINE NOP 90\nDEFINE RET C3\n")
    (base / "AMD64" / "prog.M1").write_text(":_start\nNOP NOP\nRET\n")
    (base / "AMD64" / "yes.txt").write_text("yes\n")
    (base / "AMD64" / "no.txt").write_text("no\n")
    (base / "kaem.amd64").write_text(
        "./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed ./AMD64/mescc-tools-seed-kaem.kaem\n"
        "./AMD64/artifact/kaem-0 --verbose --strict --file ./AMD64/kaem.run\n"
    )
    (base / "AMD64" / "mescc-tools-seed-kaem.kaem").write_text(
        SEED_KAEM.format(hex0_from=hex0_from)
    )
    (base / "AMD64" / "kaem.run").write_text(KAEM_RUN)
    (base / "AMD64" / "sub.kaem").write_text(SUB_KAEM)
    (base / "after.kaem").write_text('echo "done"\n')

    # the same commands, natively, for the answers
    scratch = root.parent / (root.name + "-native")
    scratch.mkdir()
    (scratch / "all.M1").write_bytes(
        (base / "AMD64" / "defs.M1").read_bytes() + (base / "AMD64" / "prog.M1").read_bytes()
    )
    subprocess.run(
        [tools["M1"], "--architecture", "amd64", "--little-endian", "-f", "all.M1", "-o", "p.hex2"],
        cwd=scratch,
        check=True,
    )
    subprocess.run(
        [
            tools["hex2"],
            "--architecture",
            "amd64",
            "--little-endian",
            "--base-address",
            "0x00600000",
            "-f",
            "p.hex2",
            "-o",
            "prog",
        ],
        cwd=scratch,
        check=True,
    )
    expected = {
        "prog": (scratch / "prog").read_bytes(),
        "flag": (base / "AMD64" / "yes.txt").read_bytes(),
        "kaem": Path(tools["kaem"]).read_bytes(),
    }
    lines = []
    for name, data in expected.items():
        digest = hashlib.sha256(data + (b"!" if name == corrupt else b"")).hexdigest()
        lines.append(f"{digest}  AMD64/bin/{name}\n")
    (base / "amd64.answers").write_text("".join(lines))
    return expected


def nix_build(tree: Path, steps: Path, attrs: list[str]) -> subprocess.CompletedProcess[str]:
    expr = (
        f'let s = import {REPO}/nix/stage0.nix {{ live-bootstrap = builtins.path {{ path = {tree}; name = "source"; }};'
        f" steps = {steps}; }}; in [ {' '.join(f's.amd64.{a}' for a in attrs)} ]"
    )
    return subprocess.run(
        [
            "nix-build",
            *NIX_FLAGS,
            "--option",
            "sandbox",
            "true",
            "--option",
            "extra-sandbox-paths",
            _sandbox_paths(),
            "--no-out-link",
            "-E",
            expr,
        ],
        capture_output=True,
        text=True,
    )


def translate(tree_root: Path, steps: Path) -> stage0.Stage0Plan:
    plan = stage0.plan(SourceTree.open(tree_root), "amd64")
    (steps / "stage0").mkdir(parents=True)
    (steps / "stage0" / "amd64.json").write_text(plan.to_json())
    return plan


@pytest.mark.nix
def test_synthetic_chain_builds_in_the_sandbox(nix: str, tmp_path: Path) -> None:
    tools = _which_all()
    expected = build_synthetic_tree(tmp_path / "lb", tools)
    plan = translate(tmp_path / "lb", tmp_path / "steps")
    # the translation: first builder a seed, later builders earlier outputs
    assert plan.steps[0].builder.src == "bootstrap-seeds/POSIX/AMD64/busybox"
    assert any(s.builder.step == "AMD64/artifact/catm" for s in plan.steps)
    assert set(plan.tools) == {"kaem", "prog", "flag"}  # `never` (after exec) is not built
    proc = nix_build(
        tmp_path / "lb",
        tmp_path / "steps",
        ["package", "checks.answers", "checks.self-reproduction"],
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    package = Path(proc.stdout.split()[0])
    for name, data in expected.items():
        assert (package / "bin" / name).read_bytes() == data
        assert os.access(package / "bin" / name, os.X_OK)
    assert (package / "M2libc" / "x86" / "defs.M1").read_text() == "DEFINE NOP 90\n"
    assert sorted(p.name for p in (package / "bin").iterdir()) == ["flag", "kaem", "prog"]


@pytest.mark.nix
def test_synthetic_wrong_answer_fails_the_check(nix: str, tmp_path: Path) -> None:
    tools = _which_all()
    build_synthetic_tree(tmp_path / "lb", tools, corrupt="flag")
    translate(tmp_path / "lb", tmp_path / "steps")
    proc = nix_build(tmp_path / "lb", tmp_path / "steps", ["checks.answers"])
    assert proc.returncode != 0
    assert "FAILED" in proc.stderr or "FAIL" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.nix
def test_synthetic_non_reproduction_fails_the_check(nix: str, tmp_path: Path) -> None:
    tools = _which_all()
    build_synthetic_tree(tmp_path / "lb", tools, hex0_from="catm")  # hex0 is not the seed now
    translate(tmp_path / "lb", tmp_path / "steps")
    proc = nix_build(tmp_path / "lb", tmp_path / "steps", ["checks.self-reproduction"])
    assert proc.returncode != 0
    assert "hash mismatch" in proc.stderr, proc.stderr[-3000:]


# -- the real chain ------------------------------------------------------------------------------
@pytest.mark.nix
@pytest.mark.checkout
@pytest.mark.parametrize(("arch", "package"), [("x86", "stage0"), ("amd64", "stage0-amd64")])
def test_real_stage0_builds_from_the_seed(nix: str, arch: str, package: str) -> None:
    checkout = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not checkout:
        pytest.skip(
            "LIVE_BOOTSTRAP_CHECKOUT is not set (a live-bootstrap checkout with submodules)"
        )
    if not (Path(checkout) / "seed" / "stage0-posix" / "kaem.x86").is_file():
        pytest.skip(f"{checkout} has no seed/stage0-posix (submodules not checked out?)")
    a = stage0.ARCHES[arch]
    prefix = "stage0" if arch == "x86" else "stage0-amd64"
    flake_attrs = [
        f".#{package}",
        f".#checks.x86_64-linux.{prefix}-self-reproduction",
        f".#checks.x86_64-linux.{prefix}-answers",
    ]
    proc = subprocess.run(
        [
            "nix",
            *NIX_FLAGS,
            "--option",
            "sandbox",
            "true",
            "build",
            "--no-link",
            "--json",
            "--override-input",
            "live-bootstrap",
            f"path:{checkout}",
            *flake_attrs,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    built = [Path(b["outputs"]["out"]) for b in json.loads(proc.stdout)]
    (out,) = [p for p in built if p.name.endswith(f"-stage0-posix-{arch}")]
    # answers, checked again here from the fixture's copy of the answers file
    answers = LB_FIXTURES / PINNED / "stage0-posix" / a.answers
    if not answers.is_file():
        answers = Path(checkout) / "seed" / "stage0-posix" / a.answers
    for line in answers.read_text().splitlines():
        digest, path = line.split()
        tool = out / "bin" / path.rsplit("/", 1)[1]
        assert hashlib.sha256(tool.read_bytes()).hexdigest() == digest, path
    for name in (
        "blood-elf",
        "catm",
        "chmod",
        "cp",
        "get_machine",
        "hex2",
        "kaem",
        "match",
        "M1",
        "M2-Mesoplanet",
        "M2-Planet",
        "mkdir",
        "sha256sum",
        "unbz2",
        "ungz",
        "untar",
        "unxz",
        "replace",
        "rm",
    ):
        assert os.access(out / "bin" / name, os.X_OK), name
    assert (out / "M2libc" / "x86" / "x86_defs.M1").is_file()
    # self-reproduction, from the outside: the rebuilt hex0 equals the seed
    step = subprocess.run(
        [
            "nix",
            *NIX_FLAGS,
            "eval",
            "--raw",
            "--override-input",
            "live-bootstrap",
            f"path:{checkout}",
            f".#packages.x86_64-linux.{package}.steps",
            "--apply",
            f's: s."{a.arch_dir}/artifact/hex0".outPath',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert step.returncode == 0, step.stderr[-2000:]
    seed = Path(checkout) / "seed" / "stage0-posix" / a.seeds / "hex0-seed"
    assert Path(step.stdout).read_bytes() == seed.read_bytes()
