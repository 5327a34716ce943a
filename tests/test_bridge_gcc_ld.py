"""The seed gcc's ld and as (stdenv-bridge/gcc.sh, bridge_path_progs), on the Debian stand-in.

The seed gcc is configured `--with-ld=$out/libexec/bridge/ld` (and `--with-as`): the driver and
collect2 run that program before anything on PATH, and it runs the `ld` found on PATH (nixpkgs'
ld-wrapper in every stage), the seed binutils' only when PATH has none.

Real: the function from gcc.sh, run unmodified by bash, compiling the programs with this
machine's gcc (Debian's; in the bridge it is the chain's); Debian's gcc driver and collect2
running them; Debian's ld and ld.so. Stand-ins, because no seed gcc can be built here (its
distfiles and the chain below it are not available offline): `-B DIR/` instead of `--with-ld`
(both make the driver and collect2 take DIR/ld before PATH; gcc.c's find_a_program returns
DEFAULT_LINKER for `-print-prog-name=ld` the same way), `/usr/bin` for the seed binutils' bin,
and a small `ld` script for nixpkgs' ld-wrapper that does what matters here: an `-rpath` for
every `-L` directory (nixpkgs' ld-wrapper adds one for each -L directory that holds a library
the link uses).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

GCC_SH = REPO / "stdenv-bridge" / "gcc.sh"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "ld", "readelf")),
    reason="needs gcc, ld and readelf (Debian: gcc, binutils)",
)

LD_WRAPPER = """#!/bin/bash
# stand-in for nixpkgs' ld-wrapper: RUNPATH entries for the -L directories, then the real ld
extra=()
for a in "$@"; do
    case "$a" in -L/*) extra+=(-rpath "${a#-L}") ;; esac
done
echo "ld-wrapper ran" >> "$WRAPPER_LOG"
exec /usr/bin/ld "$@" "${extra[@]}"
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gcc-ld")
    progs = d / "libexec/bridge"
    # gcc.sh, unmodified: define its functions, then run the one that makes the programs
    subprocess.run(
        [
            "bash",
            "-euc",
            '. "$1"; cd "$2"; bridge_path_progs "$3" /usr/bin gcc as ld',
            "bash",
            str(GCC_SH),
            str(d),
            str(progs),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (d / "wrapper").mkdir()
    wrapper = d / "wrapper/ld"
    wrapper.write_text(LD_WRAPPER)
    wrapper.chmod(0o755)
    (d / "lib").mkdir()
    (d / "foo.c").write_text('#include <stdio.h>\nvoid foo(void) { puts("foo ok"); }\n')
    (d / "main.c").write_text("void foo(void);\nint main(void) { foo(); return 0; }\n")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(d / "lib/libfoo.so"), str(d / "foo.c")], check=True
    )
    return d


def _gcc(work: Path, prefix: Path, out: str, path: str) -> subprocess.CompletedProcess[str]:
    log = work / "wrapper.log"
    log.write_text("")
    env = dict(os.environ, PATH=path, WRAPPER_LOG=str(log))
    return subprocess.run(
        [
            "/usr/bin/gcc",
            f"-B{prefix}/",
            str(work / "main.c"),
            f"-L{work}/lib",
            "-lfoo",
            "-o",
            str(work / out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )


def _runpath(binary: Path) -> str:
    dyn = subprocess.run(["readelf", "-dW", str(binary)], capture_output=True, text=True).stdout
    return " ".join(line for line in dyn.splitlines() if "RUNPATH" in line or "RPATH" in line)


def _run(binary: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    return subprocess.run([str(binary)], capture_output=True, text=True, env=env)


def test_the_programs_are_static_and_gcc_names_them(work: Path) -> None:
    progs = work / "libexec/bridge"
    assert sorted(p.name for p in progs.iterdir()) == ["as", "ld"]  # the C source is gone
    for p in progs.iterdir():
        headers = subprocess.run(["readelf", "-lW", str(p)], capture_output=True, text=True)
        assert "Requesting program interpreter" not in headers.stdout  # runs from any store path
    name = subprocess.run(
        ["/usr/bin/gcc", f"-B{progs}/", "-print-prog-name=ld"], capture_output=True, text=True
    ).stdout.strip()
    assert name == f"{progs}/ld"


def test_a_link_goes_through_the_ld_wrapper_on_path_and_the_program_runs(work: Path) -> None:
    p = _gcc(work, work / "libexec/bridge", "through-wrapper", f"{work}/wrapper:/usr/bin:/bin")
    assert p.returncode == 0, p.stderr
    assert (work / "wrapper.log").read_text() == "ld-wrapper ran\n"
    assert f"{work}/lib" in _runpath(work / "through-wrapper")
    run = _run(work / "through-wrapper")
    assert run.returncode == 0 and run.stdout == "foo ok\n", run.stderr


def test_the_assembler_is_the_one_on_path_too(work: Path, tmp_path: Path) -> None:
    log = tmp_path / "as.log"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "as").write_text(f'#!/bin/bash\necho as >> {log}\nexec /usr/bin/as "$@"\n')
    (fake / "as").chmod(0o755)
    p = subprocess.run(
        ["/usr/bin/gcc", f"-B{work}/libexec/bridge/", "-c", str(work / "main.c"), "-o", "m.o"],
        cwd=tmp_path,
        env=dict(os.environ, PATH=f"{fake}:/usr/bin:/bin"),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert log.read_text() == "as\n"


def test_without_an_ld_on_path_the_seed_binutils_ld_links(work: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # PATH has no ld (and this program's own directory is skipped even when on PATH)
    path = f"{work}/libexec/bridge:{empty}"
    p = _gcc(work, work / "libexec/bridge", "fallback", path)
    assert p.returncode == 0, p.stderr
    assert (work / "wrapper.log").read_text() == ""
    assert _runpath(work / "fallback") == ""  # the plain ld adds none


def test_planted_fault_naming_the_seed_ld_directly_skips_the_wrapper(
    work: Path, tmp_path: Path
) -> None:
    """What `--with-ld=$binutils/bin/ld` did: the wrapper on PATH is never run, no RUNPATH, and
    the program fails at run time."""
    direct = tmp_path / "direct"
    direct.mkdir()
    (direct / "ld").symlink_to("/usr/bin/ld")
    p = _gcc(work, direct, "direct-ld", f"{work}/wrapper:/usr/bin:/bin")
    assert p.returncode == 0, p.stderr
    assert (work / "wrapper.log").read_text() == ""
    assert _runpath(work / "direct-ld") == ""
    run = _run(work / "direct-ld")
    assert run.returncode != 0
    assert "libfoo.so: cannot open shared object file" in run.stderr
