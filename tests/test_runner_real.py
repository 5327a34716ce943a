"""The real chain, as far as a checkout's distfiles go, and the script-generator oracle.

Runs when LIVE_BOOTSTRAP_CHECKOUT points at a live-bootstrap checkout with submodules (it is used
as the flake's live-bootstrap input). Builds stage0 from the hex0 seed, the seed stage, and the
first two steps, which need no distfiles; their binaries must equal upstream's pins. mes-0.27.1
needs mes-0.27.1.tar.gz: without it the build must stop at that distfile.

The oracle: live-bootstrap's own script-generator, built by the seed stage the way seed.kaem builds
it, run with the `nix` and `bwrap-ci` profiles' bootstrap.cfg (checks oracle-nix and
oracle-bwrap-ci). oracle-nix already compares the files it writes with our model's rendering
inside the derivation; here the step sequence of both profiles' /steps/N.sh is compared with
`orchestrator plan --profile`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner_support import synth

REPO = Path(__file__).resolve().parent.parent
CHECKOUT = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="set LIVE_BOOTSTRAP_CHECKOUT to a live-bootstrap checkout with submodules"
)
NIX = ["nix", *synth.NIX_FLAGS]


def nix_build(*attrs: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        *NIX,
        "build",
        "--no-link",
        "--json",
        "--override-input",
        "live-bootstrap",
        f"path:{CHECKOUT}",
        *[f"{REPO}#{a}" for a in attrs],
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if check and p.returncode != 0:
        raise AssertionError(p.stderr[-5000:])
    return p


def outputs(*attrs: str) -> list[Path]:
    return [Path(d["outputs"]["out"]) for d in json.loads(nix_build(*attrs).stdout)]


def pins(pkg: str) -> dict[str, str]:
    text = (Path(CHECKOUT) / "steps" / pkg / f"{pkg}.x86.checksums").read_text()
    return {line.split()[1]: line.split()[0] for line in text.splitlines() if line.strip()}


@pytest.mark.parametrize("pkg", ["checksum-transcriber-1.0", "simple-patch-1.0"])
def test_first_steps_match_upstream_pins(pkg):
    (out,) = outputs(f'"{pkg}-pass1"')
    import hashlib

    for path, sha in pins(pkg).items():
        data = (out / "tree" / path.lstrip("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, path
    assert (out / "deletions").read_text() == ""


def test_seed_stage_exports_seed_kaem_environment():
    (seed,) = outputs("lb-seed")
    environ = (seed / "state" / "environ").read_bytes().split(b"\0")
    for var in (b"M2LIBC_PATH=/M2libc", b"PATH=/usr/bin", b"MES_PKG=mes-0.27.1", b"ARCH=x86"):
        assert var in environ
    for f in ("script-generator", "configurator", "steps/0.sh", "usr/bin/kaem"):
        assert (seed / "tree" / f).exists(), f


def test_missing_distfile_stops_the_build_there():
    p = nix_build('"mes-0.27.1-pass1"', check=False)
    if p.returncode == 0:
        pytest.skip("mes-0.27.1.tar.gz is in the store: nothing is missing here")
    assert "mes-0.27.1.tar.gz" in p.stderr


# --- the oracle ------------------------------------------------------------------------------


def sequence_from_scripts(steps_dir: Path) -> list[tuple[str, str, int | None]]:
    """(directive, name, pass) in the order script-generator's /steps/N.sh run them."""
    scripts = sorted(
        (p for p in steps_dir.iterdir() if re.fullmatch(r"\d+\.sh", p.name)),
        key=lambda p: int(p.stem),
    )
    seq: list[tuple[str, str, int | None]] = []
    pkg = None
    for script in scripts:
        for line in script.read_text().splitlines():
            if m := re.fullmatch(r"pkg=(\S+)", line):
                pkg = m.group(1)
            elif m := re.fullmatch(r"kaem --file pass(\d+)\.kaem", line):
                seq.append(("build", pkg, int(m.group(1))))
            elif m := re.fullmatch(r"build (\S+) pass(\d+)\.sh", line):
                seq.append(("build", m.group(1), int(m.group(2))))
            elif m := re.fullmatch(r"(?:kaem --file|\.) /steps/(improve|jump)/(\S+)\.sh", line):
                seq.append((m.group(1), m.group(2), None))
            elif m := re.fullmatch(r"uninstall (.+)", line):
                seq.append(("uninstall", m.group(1), None))
    return seq


def sequence_from_model(profile: str) -> list[tuple[str, str, int | None]]:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "plan",
            "--live-bootstrap",
            CHECKOUT,
            "--profile",
            profile,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return [(e["directive"], e["name"], e["pass"]) for e in json.loads(p.stdout)]


@pytest.mark.parametrize("profile", ["nix", "bwrap-ci"])
def test_oracle_script_generator_agrees_with_model(profile):
    (out,) = outputs(f"checks.x86_64-linux.oracle-{profile}")
    real = sequence_from_scripts(out / "tree" / "steps")
    assert real == sequence_from_model(profile)
    assert len(real) > 100


def test_real_steps_rebuild_bit_identical():
    """`nix build --rebuild`: the seed stage and the first step give identical outputs again."""
    nix_build('"checksum-transcriber-1.0-pass1"', "lb-seed")
    p = subprocess.run(
        [
            *NIX,
            "build",
            "--no-link",
            "--rebuild",
            "--override-input",
            "live-bootstrap",
            f"path:{CHECKOUT}",
            f'{REPO}#"checksum-transcriber-1.0-pass1"',
            f"{REPO}#lb-seed",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "not deterministic" not in p.stderr
