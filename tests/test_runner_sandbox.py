"""What the Nix sandbox treats differently from live-bootstrap's bwrap mode, built for real.

A synthetic chain (tests/runner_support/synth.py, generated with the real generator, built with
nix/runner.nix and the host-built ns-run over a busybox/bash stand-in root) whose steps perform
the operations that stopped the real chain (issue 9):

* a setuid ``chmod 4755`` captured into a package tarball, whose member mode is checked; with
  Nix's default ``filter-syscalls`` the chain must stop at once with one message naming the
  setting and the steps (the setuid check derivation), and build with ``filter-syscalls = false``;
* finalize_fhs's ``mount | grep '/sys' || mount -t sysfs`` guard under ``set -e``;
* clean_sources' ``for f in "$DISTFILES/"*; do rm "$f"; done`` under ``set -e`` in an improve step;
* a copy-up of a /usr of 64 MiB where the step rewrites two files in place: only those reach the
  output, and ns-run's peak RSS stays far below the tree's size (it used to hold every copy).

With LIVE_BOOTSTRAP_CHECKOUT, the real improve/clean_sources.sh, finalize_fhs.sh and
populate_device_nodes.sh run through the runner on a synthetic root as well.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.runner_support import synth

pytestmark = pytest.mark.skipif(
    shutil.which("nix-build") is None or bool(synth.missing_tools()),
    reason=f"needs nix and {', '.join(synth.missing_tools()) or 'nothing'}",
)

BASH_KAEM = synth.BASH_KAEM

SUID_PASS1 = """\
src_unpack() { :; }
src_install() {
    mkdir -p "${DESTDIR}/usr/bin"
    printf '#!/usr/bin/sh\\necho suid\\n' > "${DESTDIR}/usr/bin/suidtool"
    chmod 4755 "${DESTDIR}/usr/bin/suidtool"
    printf 'x\\n' > "${DESTDIR}/usr/bin/sgidtool"
    chmod 2755 "${DESTDIR}/usr/bin/sgidtool"
}
"""

# what /dev holds before and after a step that makes a link there (upstream's
# populate_device_nodes makes /dev/stdout, and in bwrap mode it stays: /dev is on disk)
DEV_BEFORE = """\
mkdir -p /usr/share/dev
ls -A /dev > /usr/share/dev/before
"""

DEV_NODES = """\
test -e "/dev/stdout" || ln -s "/proc/self/fd/1" "/dev/stdout"
"""

SYS_GUARD = """\
mount | grep '/sys' &> /dev/null || (mkdir -p /sys; mount -t sysfs sysfs /sys)
mount | grep '/proc' &> /dev/null || (mkdir -p /proc; mount -t proc proc /proc)
test -L /dev/stdout
mkdir -p /usr/share/guard
mount > /usr/share/guard/mounts
ls -A /sys > /usr/share/guard/sys
ls -A /dev > /usr/share/guard/dev
"""

CLEAN_DISTFILES = """\
for f in "${DISTFILES}/"*; do
    rm "${f}"
done
mkdir -p /usr/share/clean
echo done > /usr/share/clean/verdict
"""

BIG_FILES = 64  # MiB, one file each

FILL_PASS1 = f"""\
src_unpack() {{ :; }}
src_install() {{
    mkdir -p "${{DESTDIR}}/usr/lib/big"
    i=0
    while [ $i -lt {BIG_FILES} ]; do
        head -c 1048576 /dev/urandom > "${{DESTDIR}}/usr/lib/big/f$i"
        i=$((i + 1))
    done
}}
"""

REWRITE_PASS1 = """\
src_unpack() { :; }
src_install() {
    # in place, as tar-1.12 and stage0's cp do: only possible on a copied-up file
    # a copy-up is invisible: the copy has the mode and mtime the store file had
    mkdir -p "${DESTDIR}/usr/share/rewrite"
    stat -c '%a %Y' /usr/lib/big/f3 > "${DESTDIR}/usr/share/rewrite/f3"
    echo changed > /usr/lib/big/f1
    echo more >> /usr/lib/big/f2
    mkdir -p "${DESTDIR}/usr/share/rewrite"
    echo ok > "${DESTDIR}/usr/share/rewrite/verdict"
}
"""

MANIFEST = """\
build: bash-5.0
improve: setup_repo
improve: update_env
build: suid-1.0
improve: dev_before
improve: dev_nodes
improve: sys_guard
improve: clean_distfiles
build: fill-1.0
build: rewrite-1.0
"""

STEP_DATA = [
    {"steps": ["suid-1.0-pass1"], "setuid": True, "reason": "installs a setuid program"},
    {
        "steps": ["rewrite-1.0-pass1"],
        "copyUpTrees": ["/usr"],
        "reason": "rewrites installed files in place",
    },
]

CUSTOM = {
    "manifest": MANIFEST,
    "packages": {
        "bash-5.0": {"pass1.kaem": BASH_KAEM},
        "suid-1.0": {"pass1.sh": SUID_PASS1},
        "fill-1.0": {"pass1.sh": FILL_PASS1},
        "rewrite-1.0": {"pass1.sh": REWRITE_PASS1},
    },
    "improves": {
        "setup_repo": synth.SETUP_REPO,
        "update_env": synth.UPDATE_ENV,
        "dev_before": DEV_BEFORE,
        "dev_nodes": DEV_NODES,
        "sys_guard": SYS_GUARD,
        "clean_distfiles": CLEAN_DISTFILES,
    },
}

NO_FILTER = ["--option", "filter-syscalls", "false"]


def filter_on() -> bool:
    """Nix's filter-syscalls as configured here (the refusal tests need the default, on)."""
    from orchestrator.build import setuid

    return setuid.current_settings().get(setuid.SETTING) is not False


needs_filter = pytest.mark.skipif(
    shutil.which("nix") is None or not filter_on(),
    reason="this machine's nix.conf has filter-syscalls = false: nothing refuses setuid bits",
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    s = synth.Synth(tmp_path_factory.mktemp("runner-sandbox"))
    s.prepare(None, custom=CUSTOM, step_data=STEP_DATA)
    s.build(["final"], NO_FILTER)
    return s


def out(s: synth.Synth, attr: str) -> Path:
    p = s.build([attr], NO_FILTER)
    return Path(p.stdout.strip().splitlines()[-1])


def test_setuid_bits_reach_the_package_tarball(chain):
    pkg = out(chain, "suid-1.0-pass1") / "tree" / "external" / "repo" / "suid-1.0_0.tar.bz2"
    with tarfile.open(fileobj=io.BytesIO(pkg.read_bytes()), mode="r:bz2") as tar:
        modes = {m.name.lstrip("./"): m.mode for m in tar.getmembers() if m.isfile()}
    assert modes["usr/bin/suidtool"] == 0o4755
    assert modes["usr/bin/sgidtool"] == 0o2755


@needs_filter
def test_setuid_refused_stops_the_chain_at_once_naming_the_setting(chain):
    """Nix's default filter-syscalls: the setuid check fails with one message, and the step that
    needs the bits is never started."""
    prefix = f"nosuid{time.time_ns()}-"
    p = chain.build(["final"], ["--argstr", "prefix", prefix], check=False)
    assert p.returncode != 0
    log = p.stderr
    assert "filter-syscalls = false" in log
    assert "Steps that need it: suid-1.0-pass1" in log
    assert "EPERM" in log
    assert f"{prefix}setuid-check" in log
    built = re.findall(rf"building '[^']*{prefix}([\w.+-]+)\.drv", log)
    assert "suid-1.0-pass1" not in built and "rewrite-1.0-pass1" not in built


@needs_filter
def test_step_itself_checks_setuid_before_running(chain):
    """The step (not only the check derivation) refuses to start: the check's output may be
    cached from a machine where the setting was off."""
    p = chain.build(["setuid-check"], NO_FILTER)
    assert p.returncode == 0
    p = chain.build(["suid-1.0-pass1"], ["--check"], check=False)
    assert p.returncode != 0
    assert "setting a setuid bit (chmod 04755) fails here" in p.stderr


def test_sys_is_mounted_as_scripts_check_without_host_content(chain):
    guard = out(chain, "improve-sys_guard-1") / "tree" / "usr" / "share" / "guard"
    mounts = (guard / "mounts").read_text()
    assert re.search(r" on /sys type tmpfs \(ro", mounts), mounts
    assert (guard / "sys").read_text() == ""  # nothing of the host


UPSTREAM_DEV = ["null", "ptmx", "random", "shm", "tty", "urandom", "zero"]


def test_dev_is_what_rootfs_py_binds_and_keeps_what_a_step_makes(chain):
    """rootfs.py's bwrap call: `--dir /dev`, six `--dev-bind` nodes, `--tmpfs /dev/shm`, no
    `--dev` (so no full, fd, stdin, stdout, stderr); a link a step makes in /dev stays."""
    before = out(chain, "improve-dev_before-1") / "tree/usr/share/dev/before"
    assert before.read_text().split() == UPSTREAM_DEV
    made = out(chain, "improve-dev_nodes-1") / "tree" / "dev"
    assert sorted(p.name for p in made.iterdir()) == ["stdout"]  # mount points pruned
    assert os.readlink(made / "stdout") == "/proc/self/fd/1"
    after = out(chain, "improve-sys_guard-1") / "tree/usr/share/guard/dev"
    assert after.read_text().split() == sorted([*UPSTREAM_DEV, "stdout"])
    assert not (out(chain, "improve-sys_guard-1") / "tree" / "dev").exists()


def test_improve_step_can_loop_over_distfiles_under_set_e(chain):
    verdict = out(chain, "improve-clean_distfiles-1") / "tree" / "usr/share/clean/verdict"
    assert verdict.read_text() == "done\n"


def test_copy_up_keeps_only_rewritten_files_and_little_memory(chain):
    o = out(chain, "rewrite-1.0-pass1")
    big = o / "tree" / "usr" / "lib" / "big"
    assert sorted(p.name for p in big.iterdir()) == ["f1", "f2"]
    assert (big / "f1").read_text() == "changed\n"
    assert (big / "f2").stat().st_size == 1048576 + 5
    assert (o / "tree/usr/share/rewrite/verdict").read_text() == "ok\n"
    # the store file's mode and mtime (Nix's canonical 0444 and 1), not 0644 and "now"
    assert (o / "tree/usr/share/rewrite/f3").read_text() == "444 1\n"
    log = chain.build(["rewrite-1.0-pass1"], [*NO_FILTER, "--check"]).stderr
    m = re.search(r"copied up (\d+) files below /usr", log)
    assert m and int(m.group(1)) >= BIG_FILES
    rss = re.search(r"peak RSS\s+(\d+) kB", log)
    assert rss, log[-2000:]
    # the tree is 64 MiB; the runner streams each copy through one buffer
    assert int(rss.group(1)) < 16 * 1024, rss.group(0)


# --- live-bootstrap's own scripts, when a checkout is available -----------------------------

CHECKOUT = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
REAL = ["clean_sources", "finalize_fhs", "populate_device_nodes"]


@pytest.mark.skipif(
    not CHECKOUT, reason="set LIVE_BOOTSTRAP_CHECKOUT to run live-bootstrap's improve scripts"
)
def test_real_improve_scripts_run_through_the_runner(tmp_path_factory):
    improves = {n: (Path(CHECKOUT) / "steps/improve" / f"{n}.sh").read_text() for n in REAL}
    improves["setup_repo"] = synth.SETUP_REPO
    improves["update_env"] = synth.UPDATE_ENV
    manifest = "build: bash-5.0\nimprove: setup_repo\nimprove: update_env\n" + "".join(
        f"improve: {n}\n" for n in REAL
    )
    manifest += "build: after-1.0\n"
    after = """\
src_unpack() { :; }
src_install() {
    test -s /etc/passwd
    grep -q '^root:x:0:0:' /etc/passwd
    test -e /etc/resolv.conf
    test -d /var/log
    test -L /dev/stdout
    mkdir -p "${DESTDIR}/usr/share/after"
    echo ok > "${DESTDIR}/usr/share/after/verdict"
}
"""
    s = synth.Synth(tmp_path_factory.mktemp("runner-real-improve"))
    s.prepare(
        None,
        custom={
            "manifest": manifest,
            "packages": {"bash-5.0": {"pass1.kaem": BASH_KAEM}, "after-1.0": {"pass1.sh": after}},
            "improves": improves,
        },
    )
    p = s.build(["final"], check=False)
    assert p.returncode == 0, p.stderr[-4000:]
    root = Path(s.build(["flat"]).stdout.strip().splitlines()[-1]) / "tree"
    assert (root / "usr/share/after/verdict").read_text() == "ok\n"
    assert (root / "etc/group").read_text().startswith("root:x:0:\n")


@needs_filter
def test_orchestrator_build_passes_filter_syscalls(chain):
    """`orchestrator build` sees the marked step in the closure and, as root, passes
    --option filter-syscalls false (saying so); the step then builds under the default setting."""
    import subprocess
    import sys

    prefix = f"cli{time.time_ns()}-"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "build",
            "-f",
            str(chain.harness),
            *chain.args(),
            "--argstr",
            "prefix",
            prefix,
            "suid-1.0-pass1",
        ],
        capture_output=True,
        text=True,
        cwd=synth.REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "passing --option filter-syscalls false: suid-1.0-pass1" in p.stderr


@needs_filter
def test_failure_after_a_refused_setuid_mode_names_filter_syscalls(tmp_path_factory):
    """A step not marked in the runner data that sets a setuid (or setgid) bit fails with
    ns-run's note naming the setting and the runner data; a step that fails for another reason
    where the bits work gets no such note. A fresh prefix per run: an output built earlier (with
    the filter off) would otherwise be reused without running the step."""
    prefix = ["--argstr", "prefix", f"sneaky{time.time_ns()}-"]
    for bits in ("4755", "2755"):
        custom = {
            "manifest": "build: bash-5.0\nimprove: sneaky\n",
            "packages": {"bash-5.0": {"pass1.kaem": BASH_KAEM}},
            "improves": {"sneaky": f"touch /tmp/x\nchmod {bits} /tmp/x\n"},
        }
        s = synth.Synth(tmp_path_factory.mktemp(f"runner-sneaky-{bits}"))
        s.prepare(None, custom=custom)
        p = s.build(["final"], prefix, check=False)
        assert p.returncode != 0
        assert "Operation not permitted" in p.stderr
        assert "note: this sandbox refuses setuid/setgid modes" in p.stderr
        assert "`filter-syscalls`" in p.stderr and "steps/overrides/runner/steps.json" in p.stderr
    # the same step with the filter off builds; a plain failure there gets no note
    assert s.build(["final"], [*prefix, *NO_FILTER]).returncode == 0
    custom["improves"] = {"sneaky": "false\n"}
    s.prepare(None, custom=custom)
    p = s.build(["final"], [*prefix, *NO_FILTER], check=False)
    assert p.returncode != 0
    assert "ns-run: FAILED" in p.stderr and "refuses setuid" not in p.stderr


def _builds_run_as_root() -> bool:
    """Nix builds as root when it has no build-users-group: then the store's files of an earlier
    layer are root's own inside the step, and nothing refuses an operation on them."""
    config = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "show-config"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    group = re.search(r"^build-users-group = (\S*)$", config, re.MULTILINE)
    return group is None or not group.group(1)


def test_hard_link_to_an_earlier_layer_needs_a_copy_up(tmp_path_factory):
    """With fs.protected_hardlinks (the usual default), link() to a store-owned file of an earlier
    layer fails with EPERM; a copyUp entry in the step data makes it work (docs/runner.md, the
    sweep). No surviving step of the real chain does this today."""
    if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() != "1":
        pytest.skip("fs.protected_hardlinks is off here: nothing refuses the link")
    if _builds_run_as_root():
        pytest.skip("builds run as root here (no build-users-group): root may link any file")
    custom = {
        "manifest": "build: bash-5.0\nimprove: hardlink\n",
        "packages": {"bash-5.0": {"pass1.kaem": BASH_KAEM}},
        "improves": {"hardlink": "ln /usr/bin/busybox /usr/bin/hardlinked\n"},
    }
    s = synth.Synth(tmp_path_factory.mktemp("runner-hardlink"))
    s.prepare(None, custom=custom)
    p = s.build(["final"], check=False)
    assert p.returncode != 0
    assert "Operation not permitted" in p.stderr
    data = [{"steps": ["improve-hardlink-1"], "copyUp": ["/usr/bin/busybox"], "reason": "link"}]
    s.prepare(None, custom=custom, step_data=data)
    p = s.build(["improve-hardlink-1"])
    tree = Path(p.stdout.strip().splitlines()[-1]) / "tree"
    assert (tree / "usr/bin/hardlinked").is_file()


ENV_RECORD = """\
mkdir -p /usr/share/env
env | cut -d= -f1 | sort > /usr/share/env/{name}
"""


def test_first_step_of_a_ci_pass_starts_from_env_i_plus_path(tmp_path_factory):
    """After a `jump: break ( INTERNAL_CI == pass1 )` line (not a step in this profile), the next
    step starts as upstream CI's next job does: `env -i` plus bwrap's PATH; the script then
    re-exports what /steps/env exports. Before the line, the kaem era's exports are carried."""
    custom = {
        "manifest": "build: bash-5.0\nimprove: setup_repo\nimprove: update_env\n"
        "improve: env_one\njump: break ( INTERNAL_CI == pass1 )\nimprove: env_two\n",
        "packages": {"bash-5.0": {"pass1.kaem": BASH_KAEM}},
        "improves": {
            "setup_repo": synth.SETUP_REPO,
            "update_env": synth.UPDATE_ENV,
            "env_one": ENV_RECORD.format(name="one"),
            "env_two": ENV_RECORD.format(name="two"),
        },
        # upstream's steps/jump/break.sh; only the bwrap-ci profile keeps the jump itself
        "jumps": {"break": "exit 0\n"},
    }
    s = synth.Synth(tmp_path_factory.mktemp("runner-ci-pass"))
    s.prepare(None, custom=custom)
    one = (s.out("improve-env_one-1") / "tree/usr/share/env/one").read_text().split()
    two = (s.out("improve-env_two-1") / "tree/usr/share/env/two").read_text().split()
    assert "ARCH" in one and "DISTFILES" in one  # kaem era's exports, carried within a pass
    env_file = (s.out("improve-env_one-1") / "state" / "env").read_text()
    exported = set(re.findall(r"^export (\w+)=", env_file, re.MULTILINE))
    assert exported == {"FOO"}
    bash_own = {"PWD", "OLDPWD", "SHLVL", "_"}
    assert set(two) == {"PATH"} | exported | bash_own


# What each operation on a file of an earlier layer (a store file: owner unmapped, mode 0555)
# does in a step, and that the step data's `copyUp` makes it behave as on a normal root file
# system (docs/runner.md, "Ownership"). ns-run cannot yet name the file and the operation when a
# step hits this limit; the kernel's error is all the log shows.
EARLIER_FILE_OPS = {
    "write": "echo x >> /usr/bin/kaem",
    "chmod": "chmod 700 /usr/bin/kaem",
    "utime": "touch -d @5 /usr/bin/kaem",
    "rename": "mv /usr/bin/kaem /usr/bin/kaem.old",
}


@pytest.mark.parametrize("op", sorted(EARLIER_FILE_OPS))
def test_operation_on_an_earlier_layers_file_needs_a_copy_up(op, tmp_path_factory):
    custom = {
        "manifest": "build: bash-5.0\nimprove: touchold\n",
        "packages": {"bash-5.0": {"pass1.kaem": BASH_KAEM}},
        "improves": {"touchold": EARLIER_FILE_OPS[op] + "\n"},
    }
    if _builds_run_as_root():
        pytest.skip("builds run as root here (no build-users-group): the file is root's own")
    s = synth.Synth(tmp_path_factory.mktemp(f"runner-old-{op}"))
    s.prepare(None, custom=custom)
    p = s.build(["final"], check=False)
    assert p.returncode != 0, f"{op} on a store file worked without a copy-up"
    assert re.search(r"Permission denied|Operation not permitted|Value too large", p.stderr)
    data = [{"steps": ["improve-touchold-1"], "copyUp": ["/usr/bin/kaem"], "reason": op}]
    s.prepare(None, custom=custom, step_data=data)
    assert s.build(["improve-touchold-1"]).returncode == 0
