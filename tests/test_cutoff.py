"""Early cutoff (nix/cutoff.nix, issue 20) on the synthetic chain, built for real in the sandbox.

The chain is tests/runner_support/synth.py's (real generator, real nix/runner.nix, ns-run from the
host compiler, Debian stand-in tools inside the root); lb-unpack (nix/runner/unpack.c) is built by
the host compiler here as the chain builds it with M2-Mesoplanet, and the decompressor is the
stand-in root's busybox bzip2 where the chain uses stage0-posix's unbz2 (a stand-in: stage0's
tools would need the live-bootstrap checkout).

Checked: a pinned step's layer is its package installed the way src_apply installs it, equal file
for file (type, executable bit, bytes, link targets) to what the step itself captured; a step that
writes outside its package is caught by the same comparison; a change upstream before a pinned
step gives the step a new derivation but keeps the layer's store path, and Nix builds nothing to
get the layer again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.build import pinreport
from orchestrator.build.nixlog import BuildLog
from tests.runner_support import synth

pytestmark = pytest.mark.skipif(
    shutil.which("nix-build") is None or bool(synth.missing_tools()),
    reason=f"needs nix and {', '.join(synth.missing_tools()) or 'nothing'}",
)

# the synthetic chain's mkChain call ends here; cutoff adds its argument after it
_CHAIN_END = '    setenv = if slow != "0" then [ "SYNTH_SLOW=${slow}" ] else [ ];\n  };'
assert _CHAIN_END in synth.HARNESS, "tests/runner_support/synth.py's HARNESS changed shape"

HARNESS = (
    synth.HARNESS.replace(
        "{ repo, steps, tree, runner, base, environ,",
        "{ repo, steps, tree, runner, unpack, busybox, base, environ,",
    )
    .replace(
        _CHAIN_END,
        _CHAIN_END.removesuffix("  };")
        + """    cutoff = cutoffLib.mkLayer {
      system = builtins.currentSystem;
      unpack = builtins.storePath unpack;
      # stand-in for stage0-posix's unbz2: busybox-static's bzip2, a store path of its own (as
      # unbz2 is: built from stage0-posix alone, independent of the steps)
      decompress = { name, package }: derivation {
        inherit name;
        system = builtins.currentSystem;
        builder = "${builtins.storePath busybox}/bin/busybox";
        args = [ "sh" "-c" "bzip2 -dc \\"$1\\" > \\"$2\\"" "sh" "${package}" (builtins.placeholder "out") ];
      };
    };
  };
  cutoffLib = import (repo + "/nix/cutoff.nix") { inherit lib; };""",
    )
    .replace(
        "chain.byName // {",
        "chain.byName // {\n  steps = chain.stepsByName;\n  cut = chain.cutByName;",
    )
)

PINNED = {
    "delta-1.0-pass1": "delta-1.0_0.tar.bz2",
    "delta-1.0-pass2": "delta-1.0_1.tar.bz2",
    "epsilon-1.0-pass1": "epsilon-1.0_0.tar.bz2",
}


def build_unpack(work: Path) -> str:
    d = work / "unpack"
    (d / "bin").mkdir(parents=True, exist_ok=True)
    src = synth.REPO / "nix" / "runner"
    synth.run(
        [
            "gcc",
            "-O2",
            "-static",
            "-include",
            str(src / "host.h"),
            "-o",
            str(d / "bin" / "lb-unpack"),
            str(src / "unpack.c"),
        ]
    )
    return synth.store_add(d)


class CutoffSynth(synth.Synth):
    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.harness.write_text(HARNESS)
        self.unpack = build_unpack(work)
        bb = work / "busybox"
        (bb / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which("busybox") or "busybox", bb / "bin" / "busybox")
        self.busybox = synth.store_add(bb)

    def args(self) -> list[str]:
        return [
            *super().args(),
            "--argstr",
            "unpack",
            self.unpack,
            "--argstr",
            "busybox",
            self.busybox,
        ]

    def build_cmd(self, attrs: list[str], extra: list[str] | None = None) -> list[str]:
        # attribute paths here are written quoted already (steps."delta-1.0-pass1")
        cmd = ["nix-build", str(self.harness), "--no-out-link", *synth.NIX_FLAGS, *self.args()]
        for a in attrs:
            cmd += ["-A", a if '"' in a or "." not in a else f'"{a}"']
        return cmd + (extra or [])

    def output(self, path: str) -> str:
        """The store path an attribute's derivation outputs (not its .drv: a fixed-output
        input changes the .drv file that names it, never the paths built from its output)."""
        return str(synth.run(["nix-store", "-q", "--outputs", self.attr(path)]).stdout).strip()

    def attr(self, path: str) -> str:
        return str(
            synth.run(
                ["nix-instantiate", str(self.harness), *synth.NIX_FLAGS, *self.args(), "-A", path]
            ).stdout
        ).strip()


def listing(root: Path) -> dict[str, tuple[str, ...]]:
    """What the store keeps of a tree: type, executable bit, bytes, link target."""
    out: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("directory",)
            else:
                out[rel] = ("file", str(bool(st.st_mode & 0o100)), synth.sha256(p.read_bytes()))
    return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> CutoffSynth:
    s = CutoffSynth(tmp_path_factory.mktemp("cutoff-synth"))
    s.prepare(None, update_checksums=True)
    s.build(["final"])
    pins = {
        pkg: synth.sha256((s.out(attr) / "tree" / "external" / "repo" / pkg).read_bytes())
        for attr, pkg in PINNED.items()
    }
    s.prepare(pins)
    s.pins = pins  # type: ignore[attr-defined]
    return s


def step_and_layer(s: CutoffSynth, attr: str) -> tuple[Path, Path]:
    p = s.build([f'steps."{attr}"', f'cut."{attr}".layer'])
    step, layer = p.stdout.strip().splitlines()[-2:]
    return Path(step), Path(layer)


def test_layer_equals_the_steps_captured_output(chain: CutoffSynth) -> None:
    step, layer = step_and_layer(chain, "delta-1.0-pass1")
    assert (step / "deletions").read_text() == ""
    assert (layer / "deletions").read_text() == ""
    got, want = listing(layer / "tree"), listing(step / "tree")
    assert got == want
    assert got["/usr/bin/delta"][:2] == ("file", "True")
    assert "/external/repo/delta-1.0_0.tar.bz2" in got
    # the environment the cutoff hands on is the one the step left (as a set: bash orders its
    # exports as it likes), apart from nothing
    after = Path(chain.build(['cut."delta-1.0-pass1".environ']).stdout.strip().splitlines()[-1])
    entries = set((step / "state" / "environ").read_bytes().split(b"\0"))
    assert set(after.read_bytes().split(b"\0")) == entries
    assert b"pkg=delta-1.0" in entries
    # the flake check's comparison (lb-unpack check, the chain's own tool) agrees
    p = chain.build(['cut."delta-1.0-pass1".check'])
    assert Path(p.stdout.strip().splitlines()[-1]).read_text() == "layer == step output\n"


def test_the_package_derivation_is_fixed_by_the_pin(chain: CutoffSynth) -> None:
    drv = chain.attr('cut."delta-1.0-pass1".package')
    show = synth.run(["nix", *synth.NIX_FLAGS, "show-derivation", drv]).stdout
    assert chain.pins["delta-1.0_0.tar.bz2"] in show  # type: ignore[attr-defined]
    assert '"outputHashMode"' in show or '"hashAlgo": "sha256"' in show


def test_writes_outside_the_package_are_caught_by_the_comparison(chain: CutoffSynth) -> None:
    # delta's second pass deletes and writes outside DESTDIR (rm -rf /usr/share/delta, rm of
    # alpha.txt): the package alone cannot reproduce that, and the comparison says so
    step, layer = step_and_layer(chain, "delta-1.0-pass2")
    got, want = listing(layer / "tree"), listing(step / "tree")
    assert got != want
    assert "/usr/share/delta/only" in want and "/usr/share" not in got
    assert (step / "deletions").read_text() != (layer / "deletions").read_text() == ""
    p = chain.build(['cut."delta-1.0-pass2".check'], check=False)
    assert p.returncode != 0
    log = subprocess.run(
        ["nix-store", "-l", chain.attr('cut."delta-1.0-pass2".check')],
        capture_output=True,
        text=True,
    ).stdout
    # the package has /usr/bin/delta only: the directory the step made outside it is reported
    assert "only in the step's output: /usr/share\n" in log
    assert "the step deleted from earlier layers" in log and "D /usr/share/alpha/alpha.txt" in log
    assert "is NOT what the step produced: 2 difference(s)" in log


def test_upstream_change_before_a_pinned_step_keeps_its_layer(chain: CutoffSynth) -> None:
    before_step = chain.output('steps."delta-1.0-pass1"')
    before_layer = chain.output('cut."delta-1.0-pass1".layer')
    before_improve = chain.output("improve-setup_repo-1")
    chain.build(['cut."delta-1.0-pass1".layer'])
    # a comment in an earlier, unpinned step's script
    improve = chain.tree / "steps" / "improve" / "setup_repo.sh"
    improve.write_text("# a comment added upstream\n" + improve.read_text())
    synth.generate(chain.tree, chain.steps)
    chain.base = synth.build_base(chain.work, chain.tree, [])  # /steps of the root changes too
    try:
        assert chain.output('steps."delta-1.0-pass1"') != before_step
        assert chain.output('cut."delta-1.0-pass1".layer') == before_layer
        dry = subprocess.run(
            chain.build_cmd(['cut."delta-1.0-pass1".layer'], ["--dry-run"]),
            capture_output=True,
            text=True,
            check=True,
        )
        assert "will be built" not in dry.stderr, dry.stderr
        # the unpinned step that changed is rebuilt (input-addressed, as before)
        assert chain.output("improve-setup_repo-1") != before_improve
    finally:
        chain.prepare(chain.pins)  # type: ignore[attr-defined]


def test_packages_come_from_an_unsigned_cache_trusted_by_their_pins(
    chain: CutoffSynth, tmp_path: Path
) -> None:
    # the package (fixed-output: its path is the pin) and the layer (input-addressed) copied to a
    # file:// cache without any signature; an empty store with require-sigs = true takes the
    # package, checked by Nix against the pin, and refuses the layer
    package = chain.output('cut."delta-1.0-pass1".package')
    layer = chain.output('cut."delta-1.0-pass1".layer')
    chain.build(['cut."delta-1.0-pass1".layer'])
    cache = tmp_path / "cache"
    for path in (package, layer):
        synth.run(["nix", *synth.NIX_FLAGS, "copy", "--to", f"file://{cache}", path])
    narinfo = (cache / (Path(package).name.split("-")[0] + ".narinfo")).read_text()
    assert "Sig:" not in narinfo
    assert "CA: fixed:sha256:" in narinfo
    store = tmp_path / "store"
    flags = [
        "--store",
        str(store),
        "--option",
        "substituters",
        f"file://{cache}",
        "--option",
        "require-sigs",
        "true",
    ]
    got = subprocess.run(
        ["nix-store", *flags, "--realise", package], capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    data = (store / Path(package).relative_to("/")).read_bytes()
    assert synth.sha256(data) == chain.pins["delta-1.0_0.tar.bz2"]  # type: ignore[attr-defined]
    refused = subprocess.run(
        ["nix-store", *flags, "--realise", layer], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "trusted-public-keys" in refused.stderr, refused.stderr
    assert not (store / Path(layer).relative_to("/")).exists()


def test_a_cache_serving_other_bytes_for_a_package_is_refused(
    chain: CutoffSynth, tmp_path: Path
) -> None:
    # planted fault: the cache's NAR for the package has one byte changed (and a narinfo whose
    # NarHash/FileHash match the changed NAR, as a dishonest cache would write): Nix checks the
    # content against the path, that is against the pin, and refuses it
    from orchestrator.formats import nix32

    package = chain.output('cut."delta-1.0-pass1".package')
    chain.build(['cut."delta-1.0-pass1".package'])
    cache = tmp_path / "cache"
    synth.run(
        ["nix", *synth.NIX_FLAGS, "copy", "--to", f"file://{cache}?compression=none", package]
    )
    info_file = cache / (Path(package).name.split("-")[0] + ".narinfo")
    info = info_file.read_text()
    url = next(line.split(": ", 1)[1] for line in info.splitlines() if line.startswith("URL: "))
    nar = bytearray((cache / url).read_bytes())
    # one byte of the file's contents: after the NAR string "contents" and its 8-byte length
    at = bytes(nar).index(b"contents") + 16 + 10
    nar[at] ^= 0x01
    (cache / url).write_bytes(bytes(nar))
    digest = "sha256:" + nix32.encode(hashlib.sha256(bytes(nar)).digest())
    lines = []
    for line in info.splitlines():
        if line.startswith(("NarHash: ", "FileHash: ")):
            line = line.split(": ", 1)[0] + ": " + digest
        lines.append(line)
    info_file.write_text("\n".join(lines) + "\n")
    got = subprocess.run(
        [
            "nix-store",
            "--store",
            str(tmp_path / "store"),
            "--option",
            "substituters",
            f"file://{cache}",
            "--option",
            "require-sigs",
            "true",
            "--realise",
            package,
        ],
        capture_output=True,
        text=True,
    )
    assert got.returncode != 0
    valid = subprocess.run(
        ["nix-store", "--store", str(tmp_path / "store"), "--check-validity", package],
        capture_output=True,
        text=True,
    )
    assert valid.returncode != 0
    assert "ca hash mismatch" in got.stderr, got.stderr


def _fed(stderr: str) -> BuildLog:
    log = BuildLog()
    for line in stderr.splitlines():
        log.feed_line(line, 0.0)
    log.finish(0.0)
    return log


def test_a_pin_mismatch_is_a_report_naming_step_pin_line_hashes_and_the_kept_tarball(
    chain: CutoffSynth,
) -> None:
    pins = chain.pins  # type: ignore[attr-defined]
    wrong = dict(pins)
    wrong["delta-1.0_0.tar.bz2"] = "0" * 64
    chain.prepare(wrong)
    out = ""
    try:
        step_drv = chain.attr('steps."delta-1.0-pass1"')
        out = chain.output('steps."delta-1.0-pass1"')
        p = chain.build(
            ['cut."delta-1.0-pass1".layer'],
            ["--log-format", "internal-json", "-v", "--keep-failed"],
            check=False,
        )
        assert p.returncode != 0
        log = _fed(p.stderr)
        reports = pinreport.pin_reports(
            log.failures(),
            log.errors,
            str(chain.tree),
            {step_drv: "delta-1.0-pass1"},
            {step_drv: out},
            kept=True,
        )
        assert len(reports) == 1
        text = reports[0]
        # SHA256SUMS.pkgs is sorted by file: delta-1.0_0 is its first line
        assert text.startswith(
            "pin mismatch: step delta-1.0-pass1 packed delta-1.0_0.tar.bz2, which "
            "steps/SHA256SUMS.pkgs line 1 pins"
        )
        assert (
            f"expected: {'0' * 64}" in text and f"actual:   {pins['delta-1.0_0.tar.bz2']}" in text
        )
        kept = Path(out) / "tree" / "external" / "repo" / "delta-1.0_0.tar.bz2"
        assert f"the tarball is kept at {kept}" in text
        assert synth.sha256(kept.read_bytes()) == pins["delta-1.0_0.tar.bz2"]
    finally:
        chain.prepare(pins)
        if out:  # the invalid output --keep-failed left
            subprocess.run(["rm", "-rf", out])


def test_nix_fixed_output_mismatch_is_read_too(chain: CutoffSynth, tmp_path: Path) -> None:
    # planted fault: a package derivation whose pin is not its bytes, built by Nix alone (as a
    # package substituted or built without ns-run's own check would be)
    expr = tmp_path / "fod.nix"
    expr.write_text(
        f"""derivation {{
  name = "demo-1.0_0.tar.bz2";
  system = builtins.currentSystem;
  builder = "${{builtins.storePath "{chain.busybox}"}}/bin/busybox";
  args = [ "sh" "-c" "echo not the package > $out" ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "{"1" * 64}";
  nonce = "{tmp_path.name}";
}}
"""
    )
    p = subprocess.run(
        [
            "nix-build",
            str(expr),
            "--no-out-link",
            *synth.NIX_FLAGS,
            "--log-format",
            "internal-json",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0
    log = _fed(p.stderr)
    found = pinreport.find_mismatches(log.failures(), log.errors)
    assert [(m.file, m.expected, m.actual) for m in found] == [
        ("demo-1.0_0.tar.bz2", "1" * 64, synth.sha256(b"not the package\n"))
    ]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        # a member below a link of the package would be written wherever the link points
        ([("usr/lib", "symlink", "/tmp"), ("usr/lib/f", "file", "")], "below a symbolic link"),
        ([("../escape", "file", "")], "member name with '..'"),
        ([("usr/a", "file", ""), ("usr/b", "hardlink", "usr/a")], "hard link member"),
        ([("dev/null", "chr", "")], "member type '3' is not supported"),
    ],
)
def test_lb_unpack_refuses_what_would_leave_or_misstate_the_layer(
    tmp_path: Path, members: list[tuple[str, str, str]], message: str
) -> None:
    import io
    import tarfile

    unpack = Path(build_unpack(tmp_path)) / "bin" / "lb-unpack"
    tar = tmp_path / "p.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, arg
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, arg
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
            t.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    pkg = tmp_path / "p_0.tar.bz2"
    pkg.write_bytes(b"")
    p = subprocess.run(
        [str(unpack), "layer", str(tar), str(pkg), pkg.name, str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert message in p.stderr
    assert not (Path("/tmp") / "f").exists() and not (tmp_path / "escape").exists()
