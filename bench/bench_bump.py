"""Early cutoff, measured: what a live-bootstrap bump rebuilds, input-addressed vs with cutoff.

A synthetic chain shaped like live-bootstrap's (tests/runner_support/synth.py: the real generator,
the real nix/runner.nix and nix/cutoff.nix, ns-run and lb-unpack from the host compiler, a
busybox root as the stand-in toolchain): a kaem-era bash, two improve steps, then ``--steps``
bash-era builds, each packing a package pinned in SHA256SUMS.pkgs as upstream's are, with an
unpinned ``improve:`` every ``--improve-every`` steps. Both variants of the chain (cutoff off:
every step its own layer, as before issue 20; cutoff on) are built first; then the bump: a new
pinned step inserted at the middle and a comment changed in a later step's script. Both are
rebuilt after the bump; the derivations Nix builds are counted (``--dry-run`` first, then the
build) and timed, side by side in one run.

Target: with cutoff only the new pinned step and the unpinned steps are built (plus the small
derived ones of the new step: package, tar, layer, environment; and the environment files of
pinned steps downstream of a rebuilt unpinned step); input-addressed, every step after the
insertion.

Pins are computed before the build by packing each package the way the synthetic helpers do,
with the same busybox, in a user namespace chrooted into a root with no /etc (as the step's
root has none, so tar records the same empty owner names).

    python bench/bench_bump.py [--steps 60] [--improve-every 10] [--work 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runner_support import synth  # noqa: E402
from tests.test_cutoff import HARNESS, build_unpack  # noqa: E402

STEP_SCRIPT = """\
# {comment}
src_unpack() {{ :; }}
src_install() {{
    sleep "${{SYNTH_SLOW:-0}}"
    mkdir -p "${{DESTDIR}}/usr/share/{name}" "${{DESTDIR}}/usr/bin"
    printf '%s\\n' {name} > "${{DESTDIR}}/usr/share/{name}/data"
    printf '#!/usr/bin/sh\\necho {name}\\n' > "${{DESTDIR}}/usr/bin/{name}"
    chmod 755 "${{DESTDIR}}/usr/bin/{name}"
}}
"""
BASH_KAEM = synth.BASH_KAEM


def files_of(name: str) -> dict[str, tuple[bytes, int]]:
    return {
        f"usr/share/{name}/data": (f"{name}\n".encode(), 0o644),
        f"usr/bin/{name}": (f"#!/usr/bin/sh\necho {name}\n".encode(), 0o755),
    }


def pin_of(work: Path, name: str) -> str:
    """The package the step will pack: the helpers' src_pkg, same busybox, same empty /etc."""
    root = work / "packer"
    if root.exists():
        shutil.rmtree(root)
    (root / "bin").mkdir(parents=True)
    shutil.copy2(shutil.which("busybox") or "busybox", root / "bin" / "busybox")
    dest = root / "d"
    for rel, (data, mode) in files_of(name).items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    script = (
        "cd /d && /bin/busybox find . -exec /bin/busybox touch -h -d @0 {} + && "
        "/bin/busybox tar --numeric-owner -cf /p.tar $(/bin/busybox find . -type f | "
        "LC_ALL=C /bin/busybox sort) && /bin/busybox touch -d @0 /p.tar && "
        "/bin/busybox bzip2 -9 /p.tar"
    )
    subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            f"--root={root}",
            "/bin/busybox",
            "sh",
            "-c",
            script,
        ],
        check=True,
        env={"PATH": "/bin"},
    )
    return synth.sha256((root / "p.tar.bz2").read_bytes())


def write_chain(
    s: synth.Synth, names: list[str], improve_every: int, comments: dict[str, str]
) -> None:
    manifest = "build: bash-5.0\nimprove: setup_repo\nimprove: update_env\n"
    improves = {"setup_repo": synth.SETUP_REPO, "update_env": synth.UPDATE_ENV}
    packages: dict[str, dict[str, str]] = {"bash-5.0": {"pass1.kaem": BASH_KAEM}}
    for i, name in enumerate(names):
        manifest += f"build: {name}\n"
        packages[name] = {
            "pass1.sh": STEP_SCRIPT.format(name=name, comment=comments.get(name, "a package"))
        }
        if improve_every and (i + 1) % improve_every == 0:
            imp = f"note_{i + 1}"
            manifest += f"improve: {imp}\n"
            improves[imp] = f"echo step {i + 1} > /usr/share/note-{i + 1}\n"
    synth.write_custom_tree(s.tree, manifest, packages, improves, update_checksums=False)
    (s.tree / "steps" / "SHA256SUMS.pkgs").write_text(
        "".join(f"{s.pins[n]}  {n}_0.tar.bz2\n" for n in sorted(names))  # type: ignore[attr-defined]
    )
    synth.generate(s.tree, s.steps)
    from orchestrator.upstream.chain import load_chain
    from orchestrator.upstream.tree import SourceTree

    chain = load_chain(SourceTree.open(s.tree), "nix")
    s.attrs = [x.step.attr_name for x in chain.steps]
    s.base = synth.build_base(s.work, s.tree, list(chain.plan.final_config))


BENCH_HARNESS = HARNESS.replace(
    "cutoff = cutoffLib.mkLayer {",
    'cutoff = if useCutoff == "0" then null else cutoffLib.mkLayer {',
).replace(
    "{ repo, steps, tree, runner, unpack, busybox, base, environ,",
    '{ repo, steps, tree, runner, unpack, busybox, base, environ, useCutoff ? "1",',
)


class Bench(synth.Synth):
    def __init__(self, work: Path, work_seconds: float) -> None:
        super().__init__(work)
        self.harness.write_text(BENCH_HARNESS)
        self.unpack = build_unpack(work)
        bb = work / "busybox"
        (bb / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which("busybox") or "busybox", bb / "bin" / "busybox")
        self.busybox = synth.store_add(bb)
        self.slow = str(work_seconds)
        self.pins: dict[str, str] = {}
        self.prefix = "ia-"
        self.verbose = False

    def args(self) -> list[str]:
        return [
            *super().args(),
            "--argstr",
            "unpack",
            self.unpack,
            "--argstr",
            "busybox",
            self.busybox,
            "--argstr",
            "slow",
            self.slow,
        ]

    def run(self, *, cutoff: bool) -> tuple[int, int, float]:
        """Build the final flattened root: (step derivations built, others built, seconds)."""
        # a prefix per variant: the two chains share no derivation, so neither reuses the other's
        self.prefix = "co-" if cutoff else "ia-"
        extra = ["--argstr", "useCutoff", "1" if cutoff else "0", "--argstr", "prefix", self.prefix]
        cmd = self.build_cmd(["flat"], extra)
        dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True)
        names = re.findall(r"^\s+/nix/store/[0-9a-z]{32}-(.+)\.drv$", dry.stderr, re.MULTILINE)
        steps = [n for n in names if n.startswith(self.prefix) and n != f"{self.prefix}flat"]
        if self.verbose:
            print(
                f"{'cutoff' if cutoff else 'input-addressed'}: {' '.join(sorted(names))}",
                file=sys.stderr,
            )
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"build failed:\n{p.stderr[-4000:]}")
        return len(steps), len(names) - len(steps), time.monotonic() - t0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=60, help="bash-era pinned builds (default 60)")
    ap.add_argument(
        "--improve-every", type=int, default=10, help="an unpinned improve: after every N builds"
    )
    ap.add_argument(
        "--work", type=float, default=0.0, help="seconds each build step sleeps (compile stand-in)"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="list the derivations each build makes")
    args = ap.parse_args()
    if synth.missing_tools() or shutil.which("unshare") is None:
        raise SystemExit(f"needs {', '.join(synth.missing_tools()) or 'unshare'}")
    results: dict[str, object] = {
        "steps": args.steps,
        "improve_every": args.improve_every,
        "work_seconds": args.work,
        "load_before": load(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-bump-") as tmp:
        b = Bench(Path(tmp), args.work)
        b.verbose = args.verbose
        nonce = os.urandom(4).hex()  # fresh package names: nothing of an earlier run is reused
        names = [f"p{nonce}x{i:03d}-1.0" for i in range(args.steps)]
        inserted = f"p{nonce}ins-1.0"
        for n in [*names, inserted]:
            b.pins[n] = pin_of(b.work, n)
        write_chain(b, names, args.improve_every, {})
        base: dict[str, tuple[int, int, float]] = {}
        for mode in (False, True):
            base["cutoff" if mode else "input-addressed"] = b.run(cutoff=mode)
        # the bump: a pinned step inserted at the middle, a comment changed three quarters in
        mid = len(names) // 2
        bumped = [*names[:mid], inserted, *names[mid:]]
        write_chain(
            b,
            bumped,
            args.improve_every,
            {names[(3 * len(names)) // 4]: "a comment changed upstream"},
        )
        bump: dict[str, tuple[int, int, float]] = {}
        for mode in (False, True):
            bump["cutoff" if mode else "input-addressed"] = b.run(cutoff=mode)
        phases: dict[str, dict[str, dict[str, float]]] = {
            phase: {
                k: {"steps_built": v[0], "other_built": v[1], "seconds": round(v[2], 1)}
                for k, v in runs.items()
            }
            for phase, runs in (("initial", base), ("bump", bump))
        }
        results.update(phases)
        unpinned = 3 + (len(bumped) // args.improve_every if args.improve_every else 0)
        results["unpinned_steps"] = unpinned
        results["chain_steps_after_bump"] = len(bumped) + unpinned
        results["load_after"] = load()
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(
        f"synthetic chain: {results['chain_steps_after_bump']} steps after the bump "
        f"({len(bumped)} pinned builds, {results['unpinned_steps']} unpinned); load {results['load_before']} -> {results['load_after']}"
    )
    print(f"{'':10}{'input-addressed':>34}{'cutoff':>34}")
    for phase in ("initial", "bump"):
        r = phases[phase]
        cells = [
            f"{r[m]['steps_built']} steps + {r[m]['other_built']} other, {r[m]['seconds']} s"
            for m in ("input-addressed", "cutoff")
        ]
        print(f"{phase:10}{cells[0]:>34}{cells[1]:>34}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
