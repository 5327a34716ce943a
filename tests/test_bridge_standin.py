"""The bridge's recipes built for real in the Nix sandbox, on a stand-in final system.

See tests/runner_support/bridge_standin.py for exactly what is real and what stands in: the
derivations are nix/bridge.nix's, run by ns-run with the unmodified scripts of stdenv-bridge/;
the root below them is made of Debian packages instead of .#live-bootstrap (whose steps past
simple-patch-1.0 need distfiles this machine cannot download), patchelf's source is Debian's
(0.14.3, configure generated here) instead of upstream's 0.18.0 release tarball, and the kernel
source is Debian's linux orig tarball instead of kernel.org's 6.5.6.

Built: patchelf (patchelf.sh, a C++ build), linux-headers (linux-headers.sh: `make headers` for
x86_64 with the root's gcc as HOSTCC), bash (from-chain.sh over a stand-in chain step
holding Debian's static bash) and make (from-chain.sh over Debian's dynamically linked make:
refused by the checker, naming the file). Each built member is then run from its own store path
in a plain sandboxed derivation whose builder is the member bash. Evaluation-time refusals of
nix/bridge.nix are exercised on the same harness.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runner_support import bridge_standin, synth

pytestmark = pytest.mark.skipif(
    bool(bridge_standin.missing_tools()),
    reason=f"needs {', '.join(bridge_standin.missing_tools()) or 'nothing'}",
)


def readelf(path: Path, flag: str) -> str:
    return subprocess.run(["readelf", flag, str(path)], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    try:
        return bridge_standin.Standin(tmp_path_factory.mktemp("bridge-standin"))
    except subprocess.CalledProcessError as exc:
        if "apt-get" in str(exc.cmd):
            pytest.skip(f"Debian packages not downloadable here: {exc.stderr}")
        raise


def test_patchelf_recipe_builds_a_static_patchelf(standin) -> None:
    out = standin.out("patchelf.out")
    assert sorted(p.name for p in out.iterdir()) == ["bin"]  # share/ dropped by the recipe
    binary = out / "bin/patchelf"
    assert "Requesting program interpreter" not in readelf(binary, "-lW")
    assert "NEEDED" not in readelf(binary, "-dW")
    # what the build left outside $out: nothing but directories of the root it ran in
    layer = standin.out("patchelf.layer")
    assert (layer / "deletions").read_text() == ""
    leftovers = [p for p in (layer / "tree").rglob("*") if not p.is_dir()]
    assert leftovers == []
    assert not (layer / "tree/bridge").exists() and not (layer / "tree/nix").exists()


def test_patchelf_runs_from_its_store_path(standin) -> None:
    out = standin.out("tests.patchelf")
    assert out.read_text() == "ok\n"
    p = standin.build("tests.patchelf", check=False)
    assert p.returncode == 0


def test_linux_headers_recipe_installs_the_x86_64_uapi_headers(standin) -> None:
    out = standin.out("linux-headers.out")
    inc = out / "include"
    assert (inc / "linux/types.h").is_file() and (inc / "asm/unistd_64.h").is_file()
    assert "#define __NR_read 0" in (inc / "asm/unistd_64.h").read_text()  # x86_64, not i386
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".h" for p in files)  # only headers, no .install/.cmd
    assert not list(out.rglob(".*"))
    assert standin.out("tests.linux-headers").read_text() == "ok\n"


def test_chain_member_copies_the_steps_programs(standin) -> None:
    out = standin.out("bash.out")
    assert sorted(p.name for p in (out / "bin").iterdir()) == ["bash", "sh"]
    assert (out / "bin/sh").is_symlink() and (out / "bin/sh").readlink() == Path("bash")
    assert (out / "bin/bash").read_bytes() == standin.bash.read_bytes()
    assert "Requesting program interpreter" not in readelf(out / "bin/bash", "-lW")


def test_bash_runs_from_its_store_path_as_a_builder(standin) -> None:
    drv = json.loads(
        subprocess.run(
            [
                "nix",
                "show-derivation",
                *synth.NIX_FLAGS[:2],
                standin.instantiate("tests.bash").stdout.strip(),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    (d,) = drv.values()
    # a plain derivation: the member's own bash is the builder, no runner, no root around it
    assert d["builder"].endswith("-standin-bridge-bash-5.2.15/bin/bash")
    assert "spec" not in d["env"] and not any("ns-run" in i for i in d["inputDrvs"])
    assert standin.out("tests.bash").read_text() == "ok\n"


def test_a_dynamically_linked_member_fails_naming_the_file(standin) -> None:
    p = standin.build("gnumake.out", check=False)
    assert p.returncode != 0
    assert "bridge: gnumake: /nix/store/" in p.stderr
    assert (
        "-standin-bridge-gnumake-4.3/bin/make is dynamically linked with interpreter " in p.stderr
    )
    assert "outside the store" in p.stderr
    assert "FAILED: bridge gnumake 4.3" in p.stderr


def _refusal(standin, change) -> str:  # type: ignore[no-untyped-def]
    steps = standin.steps()
    change(steps)
    standin.write_data(steps)
    try:
        p = standin.instantiate("patchelf")
    finally:
        standin.write_data()
    assert p.returncode != 0
    return p.stderr


def test_evaluation_refuses_a_member_newer_than_nixpkgs(standin) -> None:
    err = _refusal(standin, lambda steps: steps[0].update(version="0.19.0"))
    assert "standin-members.json: step patchelf: patchelf 0.19.0 is newer than the pinned" in err
    assert "nixpkgs' patchelf 0.15.2 (pkgs.patchelf.version@74cc63f702f7)" in err


def test_evaluation_allows_the_documented_exception_and_no_further(standin) -> None:
    """members.json's nixpkgs.exception: newer than the top-level counterpart only up to the
    version nixpkgs' own seed ships; and one release spelled two ways is not newer."""

    def counterpart(steps, version):  # type: ignore[no-untyped-def]
        steps[0].update(version=version)
        steps[0]["nixpkgs"] = {
            "attr": "patchelf",
            "version": "0.14",
            "from": "pkgs.patchelf.version@standin",
            "exception": {
                "attr": "minimal-bootstrap.patchelf-static",
                "version": "0.14.3",
                "from": "standin",
                "why": "standin",
            },
        }

    for version, ok in (("0.14.0", True), ("0.14.3", True), ("0.14.4", False)):
        steps = standin.steps()
        counterpart(steps, version)
        standin.write_data(steps)
        try:
            p = standin.instantiate("patchelf")
        finally:
            standin.write_data()
        assert (p.returncode == 0) == ok, (version, p.stderr)
        if not ok:
            assert "patchelf 0.14.4 is newer than the pinned nixpkgs' patchelf 0.14" in p.stderr


def test_evaluation_refuses_a_missing_script_or_hash(standin) -> None:
    err = _refusal(standin, lambda steps: steps[0].update(script="missing.sh"))
    assert "step patchelf: script missing.sh does not exist" in err
    err = _refusal(standin, lambda steps: steps[0]["sources"][0].update(sha256=""))
    assert "step patchelf: source patchelf-0.14.3.tar.gz has no sha256" in err


def test_evaluation_refuses_an_unknown_chain_step(standin) -> None:
    steps = standin.steps()
    bash = next(s for s in steps if s["name"] == "bash")
    bash.update(step="bash-9.9", version="9.9")
    bash["nixpkgs"] = dict(bash["nixpkgs"], version="10")
    standin.write_data(steps)
    try:
        p = standin.instantiate("bash")
    finally:
        standin.write_data()
    assert p.returncode != 0
    assert "step bash: the chain has no build of bash-9.9" in p.stderr


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_the_checker_itself_on_files_of_this_machine(tmp_path: Path) -> None:
    """check-store-only.sh outside the sandbox, on a static and a dynamic program and a script."""
    d = tmp_path / "m"
    (d / "bin").mkdir(parents=True)
    shutil.copy2(shutil.which("make") or "/usr/bin/make", d / "bin/make")  # dynamic
    (d / "bin/run").write_text("#!/bin/sh\necho hi\n")
    (d / "bin/ok").write_text("#!/nix/store/x-bash/bin/bash\necho hi\n")
    (d / "bin/link").symlink_to("/usr/bin/env")
    script = synth.REPO / "stdenv-bridge/check-store-only.sh"
    p = subprocess.run(["bash", str(script), "demo", str(d)], capture_output=True, text=True)
    assert p.returncode == 1
    assert (
        f"{d}/bin/make is dynamically linked with interpreter /lib64/ld-linux-x86-64.so.2"
        in p.stderr
    )
    assert f"{d}/bin/run is a script for /bin/sh, outside the store" in p.stderr
    assert f"{d}/bin/link is a symlink to /usr/bin/env, outside the store" in p.stderr
    assert "ok" not in p.stderr.replace("would not", "")
    assert "3 file(s) would not run from the store" in p.stderr
