"""A synthetic live-bootstrap-shaped chain for the runner tests, built for real in the Nix sandbox.

The tree has kaem-era and bash-era steps, ``sources`` naming tarballs made here and added to the
store as fixed-output paths, a ``define`` and predicates (one step is dropped), an ``improve:``
that changes /steps/env, a package built in two passes (the second overwrites and deletes what the
first installed), ``uninstall:`` of a file, and a last step that asserts what it sees. It is
generated with the real generator (``python -m orchestrator generate --live-bootstrap``) and
built with nix/runner.nix.

Stand-in toolchain: the real chain's tools after simple-patch need distfiles CI does not have, so
the root filesystem under the first step is Debian's ``busybox-static`` (coreutils, tar, bzip2,
sha256sum), ``mescc-tools``' kaem and ``bash``, with the shared libraries the latter two need.
The runner itself (nix/runner/ns-run.c) is built with the host compiler here; the chain builds the
same source with M2-Mesoplanet.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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

BUSYBOX_APPLETS = [
    "sh",
    "cat",
    "cp",
    "mv",
    "rm",
    "ln",
    "mkdir",
    "rmdir",
    "chmod",
    "touch",
    "ls",
    "test",
    "[",
    "echo",
    "printf",
    "env",
    "grep",
    "sed",
    "find",
    "sort",
    "xargs",
    "tar",
    "bzip2",
    "gzip",
    "sha256sum",
    "wc",
    "head",
    "tail",
    "cut",
    "tr",
    "true",
    "false",
    "sleep",
    "basename",
    "dirname",
    "id",
    "readlink",
    "uname",
    "expr",
    "awk",
    "mount",
    "mknod",
    "stat",
]


def missing_tools() -> list[str]:
    need = {"gcc": "gcc", "busybox": "busybox-static", "kaem": "mescc-tools", "bash": "bash"}
    out = []
    for tool, pkg in need.items():
        if shutil.which(tool) is None:
            out.append(pkg)
    bb = shutil.which("busybox")
    if bb is not None:
        ldd = subprocess.run(["ldd", bb], capture_output=True, text=True)
        if "not a dynamic executable" not in ldd.stdout + ldd.stderr:
            out.append("busybox-static (the busybox here is not static)")
    return out


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def store_add(path: Path) -> str:
    return run(["nix-store", "--add", str(path)]).stdout.strip()


def store_add_fixed(path: Path) -> str:
    return run(["nix-store", "--add-fixed", "sha256", str(path)]).stdout.strip()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- distfiles (deterministic bytes) ---------------------------------------------------------


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith("tool") else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


DISTFILES = {
    "alpha-1.0.txt": b"#!/usr/bin/sh\necho alpha\n",
    "gamma-1.0.txt": b"gamma data\n",
    "delta-1.0.tar.gz": _tar_gz(
        {"delta-1.0/tool": b"#!/usr/bin/sh\necho delta v1\n", "delta-1.0/obsolete": b"old\n"}
    ),
    "delta-2.0.tar.gz": _tar_gz({"delta-2.0/tool": b"#!/usr/bin/sh\necho delta v2\n"}),
}


# --- the tree ------------------------------------------------------------------------------

MANIFEST = """\
# A synthetic manifest with live-bootstrap's syntax.
build: alpha-1.0
define: FEATURE = ( ARCH == x86 )
build: beta-1.0 ( CHROOT == False ) # dropped: the nix profile is a chroot
build: gamma-1.0 ( FEATURE == True )
build: bash-5.0
improve: setup_repo
improve: update_env
build: delta-1.0
build: delta-1.0
uninstall: /usr/share/gamma/a
build: epsilon-1.0
"""

ENV = """\
# SPDX-License-Identifier: GPL-3.0-or-later

DISTFILES=/external/distfiles
PREFIX=/usr
BINDIR=${PREFIX}/bin
SRCDIR=/steps
TMPDIR=/tmp
PATH=${BINDIR}
"""

HELPERS = r"""#!/bin/bash -e
# A much smaller helpers.sh with the same shape as live-bootstrap's.
umask 022

get_revision() {
    local pkg=$1
    revision=$( (cd /external/repo && ls -1 | grep "^${pkg}_" || true) | wc -l | sed 's/ *//g')
}

src_pkg() {
    find . -exec touch -h -d @0 {} +
    local tarball="/external/repo/${pkg}_${revision}.tar"
    tar --numeric-owner -cf "${tarball}" $(find . -type f | LC_ALL=C sort)
    touch -d @0 "${tarball}"
    bzip2 -9 "${tarball}"
}

src_checksum() {
    local pkg=$1 revision=$2
    if ! [ "$UPDATE_CHECKSUMS" = True ]; then
        grep "${pkg}_${revision}.tar.bz2" "${SRCDIR}/SHA256SUMS.pkgs" > /tmp/checksum
        (cd /external/repo && sha256sum -c /tmp/checksum)
    fi
}

src_apply() {
    bzip2 -dc "/external/repo/${1}_${2}.tar.bz2" | tar -C / -xf -
}

uninstall() {
    for removing in "$@"; do
        case "${removing}" in
            /*) echo "removing file: ${removing}."; rm -f "${removing}" ;;
            *) echo "package uninstall is not part of this synthetic chain"; false ;;
        esac
    done
}

build() {
    pkg=$1
    get_revision "${pkg}"
    script_name=$2
    cd "${SRCDIR}/${pkg}"
    base_dir="${PWD}"
    rm -rf build
    mkdir build
    cd build
    . "${base_dir}/${script_name}"
    src_unpack
    mkdir -p "${DESTDIR}"
    src_install
    cd "${DESTDIR}"
    src_pkg
    src_checksum "${pkg}" "${revision}"
    cd /
    rm -rf "${SRCDIR}/${pkg}/build" "${DESTDIR}"
    src_apply "${pkg}" "${revision}"
    cd "${SRCDIR}"
    unset -f src_unpack src_install
}
"""

ALPHA_KAEM = """\
set -ex
mkdir -p /usr/share/alpha
cp ${DISTFILES}/alpha-1.0.txt /usr/share/alpha/alpha.txt
cp ${DISTFILES}/alpha-1.0.txt ${BINDIR}/alpha-tool
chmod 755 ${BINDIR}/alpha-tool
sha256sum -c alpha-1.0.x86.checksums
"""

GAMMA_KAEM = """\
set -ex
mkdir -p /usr/share/gamma
cp ${DISTFILES}/gamma-1.0.txt /usr/share/gamma/a
cp ${DISTFILES}/gamma-1.0.txt /usr/share/gamma/b
"""

BASH_KAEM = """\
set -ex
cp /usr/libexec/standin/bash ${BINDIR}/bash
chmod 755 ${BINDIR}/bash
"""

SETUP_REPO = "mkdir -p /external/repo\n"

UPDATE_ENV = """\
cat >> /steps/env <<- 'EOF'
export FOO=from-update-env
DESTDIR=/tmp/destdir
EOF
unset BINDIR
. /steps/env
"""

DELTA_PASS1 = """\
src_unpack() { tar -xzf "${DISTFILES}/delta-1.0.tar.gz"; }
src_install() {
    mkdir -p "${DESTDIR}/usr/bin" "${DESTDIR}/usr/share/delta"
    cp delta-1.0/tool "${DESTDIR}/usr/bin/delta"
    cp delta-1.0/obsolete "${DESTDIR}/usr/share/delta/obsolete"
}
"""

DELTA_PASS2 = """\
src_unpack() { tar -xzf "${DISTFILES}/delta-2.0.tar.gz"; }
src_install() {
    sleep "${SYNTH_SLOW:-0}"
    mkdir -p "${DESTDIR}/usr/bin"
    cp delta-2.0/tool "${DESTDIR}/usr/bin/delta"
    # the second pass replaces a whole directory and deletes a file of an earlier step
    rm -rf /usr/share/delta
    mkdir -p /usr/share/delta
    echo only > /usr/share/delta/only
    rm -f /usr/share/alpha/alpha.txt
}
"""

EPSILON_PASS1 = """\
src_unpack() { :; }
src_install() {
    set -x
    # env carried forward from improve: update_env (exported), BINDIR unset there and re-set by
    # sourcing /steps/env (so no longer exported)
    test "${FOO}" = from-update-env
    env | grep -qx 'FOO=from-update-env'
    ! env | grep -q '^BINDIR='
    test "${BINDIR}" = /usr/bin
    # layering: files of every earlier step
    test -x /usr/bin/alpha-tool
    test -e /usr/share/gamma/b
    test "$(/usr/bin/delta)" = "delta v2"
    # deletions: by the second pass of delta and by uninstall:
    test ! -e /usr/share/alpha/alpha.txt
    test ! -e /usr/share/delta/obsolete
    test -e /usr/share/delta/only
    test ! -e /usr/share/gamma/a
    # predicates and define: beta was dropped
    test ! -e /usr/share/beta
    mkdir -p "${DESTDIR}/usr/share/epsilon"
    echo ok > "${DESTDIR}/usr/share/epsilon/verdict"
}
"""


def write_tree(root: Path, pins: dict[str, str] | None, *, update_checksums: bool = False) -> None:
    """The synthetic live-bootstrap tree. ``pins``: SHA256SUMS.pkgs entries (file -> sha256)."""
    if root.exists():
        shutil.rmtree(root)
    steps = root / "steps"
    steps.mkdir(parents=True)
    manifest = MANIFEST
    if update_checksums:
        manifest = "define: UPDATE_CHECKSUMS = True\n" + manifest
    (steps / "manifest").write_text(manifest)
    (steps / "env").write_text(ENV)
    (steps / "helpers.sh").write_text(HELPERS)
    (steps / "SHA256SUMS.pkgs").write_text(
        "".join(f"{h}  {f}\n" for f, h in sorted((pins or {}).items()))
    )
    (root / "COMMIT").write_text("0" * 40 + "\n")

    def pkg(name: str, sources: list[str], files: dict[str, str]) -> None:
        d = steps / name
        d.mkdir()
        (d / "sources").write_text(
            "".join(f"f http://synthetic.invalid/{f} {sha256(DISTFILES[f])}\n" for f in sources)
        )
        for rel, text in files.items():
            (d / rel).write_text(text)

    pkg(
        "alpha-1.0",
        ["alpha-1.0.txt"],
        {
            "pass1.kaem": ALPHA_KAEM,
            "alpha-1.0.x86.checksums": f"{sha256(DISTFILES['alpha-1.0.txt'])}  /usr/bin/alpha-tool\n",
        },
    )
    pkg("beta-1.0", [], {"pass1.kaem": "set -ex\nmkdir -p /usr/share/beta\n"})
    pkg("gamma-1.0", ["gamma-1.0.txt"], {"pass1.kaem": GAMMA_KAEM})
    pkg("bash-5.0", [], {"pass1.kaem": BASH_KAEM})
    pkg(
        "delta-1.0",
        ["delta-1.0.tar.gz", "delta-2.0.tar.gz"],
        {"pass1.sh": DELTA_PASS1, "pass2.sh": DELTA_PASS2},
    )
    pkg("epsilon-1.0", [], {"pass1.sh": EPSILON_PASS1})
    improve = steps / "improve"
    improve.mkdir()
    (improve / "setup_repo.sh").write_text(SETUP_REPO)
    (improve / "update_env.sh").write_text(UPDATE_ENV)


def write_custom_tree(
    root: Path,
    manifest: str,
    packages: dict[str, dict[str, str]],
    improves: dict[str, str],
    *,
    jumps: dict[str, str] | None = None,
    update_checksums: bool = True,
) -> None:
    """A synthetic tree with this manifest (ENV and HELPERS as above; no package pins unless
    ``update_checksums`` is off). ``packages``: step directory -> files (no distfiles)."""
    if root.exists():
        shutil.rmtree(root)
    steps = root / "steps"
    steps.mkdir(parents=True)
    if update_checksums:
        manifest = "define: UPDATE_CHECKSUMS = True\n" + manifest
    (steps / "manifest").write_text(manifest)
    (steps / "env").write_text(ENV)
    (steps / "helpers.sh").write_text(HELPERS)
    (steps / "SHA256SUMS.pkgs").write_text("")
    (root / "COMMIT").write_text("0" * 40 + "\n")
    for name, files in packages.items():
        d = steps / name
        d.mkdir()
        (d / "sources").write_text("")
        for rel, text in files.items():
            (d / rel).write_text(text)
    improve = steps / "improve"
    improve.mkdir()
    for name, text in improves.items():
        (improve / f"{name}.sh").write_text(text)
    # steps/jump/<name>.sh: a jump the manifest names must exist for every profile to plan
    for name, text in (jumps or {}).items():
        (steps / "jump").mkdir(exist_ok=True)
        (steps / "jump" / f"{name}.sh").write_text(text)


def write_step_data(steps_dir: Path, entries: list[dict]) -> None:
    """steps/overrides/runner/steps.json, the runner's step data (kept by generate)."""
    import json

    f = steps_dir / "overrides" / "runner" / "steps.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"schema_version": 1, "entries": entries}, indent=1) + "\n")


def generate(tree: Path, out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "generate",
            "--live-bootstrap",
            str(tree),
            "--output",
            str(out),
            "--commit",
            "0" * 40,
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def add_distfiles(work: Path) -> None:
    d = work / "distfiles"
    d.mkdir(exist_ok=True)
    for name, data in DISTFILES.items():
        (d / name).write_bytes(data)
        store_add_fixed(d / name)


def build_runner(work: Path) -> str:
    """ns-run built by the host compiler, as <store>/bin/ns-run."""
    d = work / "runner"
    (d / "bin").mkdir(parents=True, exist_ok=True)
    src = REPO / "nix" / "runner"
    run(
        [
            "gcc",
            "-O2",
            "-static",
            "-include",
            str(src / "host.h"),
            "-o",
            str(d / "bin" / "ns-run"),
            str(src / "ns-run.c"),
        ]
    )
    return store_add(d)


def _libs(binary: str) -> list[str]:
    out = run(["ldd", binary]).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
    return libs


def build_base(work: Path, tree: Path, config: list[tuple[str, str]]) -> str:
    """The stand-in root filesystem under the first step, as a store path."""
    base = work / "base"
    if base.exists():
        shutil.rmtree(base)
    (base / "usr" / "bin").mkdir(parents=True)
    (base / "usr" / "libexec" / "standin").mkdir(parents=True)
    for d in ("dev", "proc", "tmp", "sys", "external/distfiles"):
        (base / d).mkdir(parents=True)
    shutil.copy2(shutil.which("busybox"), base / "usr" / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", base / "usr" / "bin" / applet)
    kaem = shutil.which("kaem")
    bash = shutil.which("bash")
    shutil.copy2(kaem, base / "usr" / "bin" / "kaem")
    shutil.copy2(bash, base / "usr" / "libexec" / "standin" / "bash")
    for lib in sorted(set(_libs(kaem) + _libs(bash))):
        dst = base / lib.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dst)
    shutil.copytree(tree / "steps", base / "steps")
    (base / "steps" / "bootstrap.cfg").write_text("".join(f"{k}={v}\n" for k, v in config))
    return store_add(base)


def initial_environ(work: Path) -> str:
    f = work / "environ"
    f.write_bytes(b"PATH=/usr/bin\0")
    return store_add(f)


HARNESS = """\
# Test harness: the runner over a generated synthetic steps/ directory.
{ repo, steps, tree, runner, base, environ, prefix ? "synth-", slow ? "0", checkpointEvery ? null }:
let
  lib = import (repo + "/nix/lib.nix");
  fetchers = import (repo + "/nix/fetchers.nix") { };
  runnerLib = import (repo + "/nix/runner.nix") { inherit lib; };
  loaded = import (repo + "/nix/steps.nix") { inherit steps; inherit (fetchers) fetchDistfile; };
  inherit (loaded) meta;
  data = loaded.chainSteps;
  chain = runnerLib.mkChain {
    system = builtins.currentSystem;
    runner = builtins.storePath runner;
    steps = data;
    below = [ { tree = builtins.storePath base; } ];
    environ = builtins.storePath environ;
    inherit (meta) config;
    envText = builtins.readFile (tree + "/steps/env");
    inherit prefix checkpointEvery;
    inherit (loaded) stepData;
    setenv = if slow != "0" then [ "SYNTH_SLOW=${slow}" ] else [ ];
  };
in
chain.byName // {
  final = chain.final;
  setuid-check = chain.setuidCheck;
  # the finished root filesystem, flattened (as .#live-bootstrap is)
  flat = runnerLib.mkCheckpoint {
    name = "${prefix}flat";
    system = builtins.currentSystem;
    runner = builtins.storePath runner;
    inherit (chain) layers;
  };
}
"""


class Synth:
    """One synthetic chain in a work directory."""

    def __init__(self, work: Path):
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.tree = work / "tree"
        self.steps = work / "steps"
        self.harness = work / "harness.nix"
        self.harness.write_text(HARNESS)
        add_distfiles(work)
        self.runner = build_runner(work)
        self.environ = initial_environ(work)
        self.base = ""

    def prepare(
        self,
        pins: dict[str, str] | None,
        *,
        update_checksums: bool = False,
        custom: dict | None = None,
        step_data: list[dict] | None = None,
    ) -> None:
        """Write and generate the tree: the standard synthetic chain, or ``custom`` (the
        arguments of write_custom_tree); ``step_data``: the runner's steps.json entries."""
        if custom is None:
            write_tree(self.tree, pins, update_checksums=update_checksums)
        else:
            write_custom_tree(self.tree, **custom)
        generate(self.tree, self.steps)
        if step_data is not None:
            write_step_data(self.steps, step_data)
        sys.path.insert(0, str(REPO))
        from orchestrator.upstream.chain import load_chain
        from orchestrator.upstream.tree import SourceTree

        chain = load_chain(SourceTree.open(self.tree), "nix")
        self.attrs = [s.step.attr_name for s in chain.steps]
        self.base = build_base(self.work, self.tree, list(chain.plan.final_config))

    def args(self) -> list[str]:
        return [
            "--arg",
            "repo",
            str(REPO),
            "--arg",
            "steps",
            str(self.steps),
            "--arg",
            "tree",
            str(self.tree),
            "--argstr",
            "runner",
            self.runner,
            "--argstr",
            "base",
            self.base,
            "--argstr",
            "environ",
            self.environ,
        ]

    def build_cmd(self, attrs: list[str], extra: list[str] | None = None) -> list[str]:
        cmd = ["nix-build", str(self.harness), "--no-out-link", *NIX_FLAGS, *self.args()]
        for a in attrs:
            cmd += ["-A", f'"{a}"' if "." in a else a]
        return cmd + (extra or [])

    def build(self, attrs: list[str], extra: list[str] | None = None, check: bool = True):
        p = subprocess.run(self.build_cmd(attrs, extra), text=True, capture_output=True)
        if check and p.returncode != 0:
            raise AssertionError(f"nix-build failed ({p.returncode}):\n{p.stderr[-6000:]}")
        return p

    def out(self, attr: str) -> Path:
        p = self.build([attr])
        return Path(p.stdout.strip().splitlines()[-1])

    def drv_with(self, extra: list[str], attr: str = "final") -> str:
        return run(
            ["nix-instantiate", str(self.harness), *NIX_FLAGS, *self.args(), *extra, "-A", attr]
        ).stdout.strip()

    def drv(self, attr: str) -> str:
        return run(
            ["nix-instantiate", str(self.harness), *NIX_FLAGS, *self.args(), "-A", f'"{attr}"']
        ).stdout.strip()
