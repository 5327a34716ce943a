"""stdenv-bridge part 2 (the nixpkgs side), evaluated by the real Nix of this machine.

Current nixpkgs cannot be fetched here and needs Nix >= 2.18 (CI has 2.8), so:

* the contract (what nixpkgs' default.nix reads from ./stage0.nix, the passthru markers its
  assertions check, initialPath, disallowedInFinalStdenv) and the scopedImport redirection are
  evaluated on a stand-in consumer tree, tests/bridge_standin/ (its README says what it follows),
  with stand-in members of part 1's seed set (instantiated, never built);
* the Nix-version guard and the laziness run on the real flake with the real Nix 2.8;
* the tests at the end evaluate real nixpkgs: they take a checkout from NIXPKGS_CHECKOUT and a
  Nix new enough for it on PATH, and skip, saying so, otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_nix

STANDIN = REPO / "tests" / "bridge_standin"
SEED_SET = json.loads((REPO / "stdenv-bridge" / "seed-set.json").read_text())
PIN = json.loads((REPO / "stdenv-bridge" / "nixpkgs-pin.json").read_text())

# nixpkgs' stage0.nix at 0530d598e110 (minimal-bootstrap branch): its initialPath, in order,
# with the "-static" of its member names dropped and compilerPackage as gcc.
NIXPKGS_INITIAL_PATH = [
    "bash",
    "binutils",
    "bzip2",
    "gcc",
    "coreutils",
    "diffutils",
    "findutils",
    "gawk",
    "gnugrep",
    "gnumake",
    "gnupatch",
    "gnused",
    "gnutar",
    "gzip",
    "patchelf",
    "xz",
]


def harness(nix: str, attr: str, check: bool = True, **args: object):
    """Evaluate an attribute of tests/bridge_standin/harness.nix (a Nix expression string per
    argument value)."""
    standin = args.pop("standin", STANDIN)
    arg_text = " ".join(f"{k} = {v};" for k, v in args.items())
    expr = (
        f"(import {STANDIN}/harness.nix {{ repo = {REPO}; standin = {standin}; {arg_text} }})"
        f".{attr}"
    )
    return run_nix("eval", "--impure", "--json", "--expr", expr, check=check)


def eval_json(nix: str, attr: str, **args: object):
    return json.loads(harness(nix, attr, **args).stdout)


@pytest.fixture(scope="module")
def bridged(nix: str) -> dict:
    return eval_json(nix, "result")


@pytest.fixture(scope="module")
def member_drvs(nix: str) -> dict[str, str]:
    return eval_json(nix, "memberDrvs")


# -- (a) the contract --------------------------------------------------------------------------
def test_the_stand_in_consumer_got_our_stage0_not_nixpkgs_own(bridged: dict) -> None:
    # the stand-in's own stage0.nix throws when imported: reaching here proves the redirection
    assert bridged["stages"] == "bridged"
    assert bridged["isMinimalBootstrap"] is True


def test_initial_path_is_nixpkgs_list_in_nixpkgs_order(bridged: dict, member_drvs: dict) -> None:
    assert SEED_SET["initialPath"] == NIXPKGS_INITIAL_PATH
    names = [re.sub(r"-[0-9][0-9.]*$", "", n) for n in bridged["initialPath"]]
    assert names == NIXPKGS_INITIAL_PATH
    # every entry carries the marker nixpkgs' stages assert on
    assert bridged["initialPathMarked"] == [True] * len(NIXPKGS_INITIAL_PATH)


def test_shell_is_the_seed_bash(bridged: dict) -> None:
    assert re.fullmatch(r"/nix/store/[a-z0-9]{32}-bash-5\.2\.15/bin/bash", bridged["shell"])
    assert bridged["runtimeShell"] == bridged["shell"]


def test_disallowed_in_final_stdenv_covers_every_member(bridged: dict, member_drvs: dict) -> None:
    assert sorted(bridged["disallowed"]) == sorted(member_drvs.values())
    assert set(member_drvs) == set(SEED_SET["members"])


def test_dummy_stdenv_overrides_give_what_stage1_takes(bridged: dict, member_drvs: dict) -> None:
    assert set(bridged["overrides"]) == {
        "ccWrapperStdenv",
        "glibc",
        "gcc-unwrapped",
        "binutils",
        "coreutils",
        "gnugrep",
    }
    assert bridged["ccWrapperStdenv"] == "bootstrap-stage0-stdenv-linux"
    assert bridged["gccUnwrapped"] == member_drvs["gcc"]
    assert bridged["gccLangs"] == [True, True, True]
    assert bridged["bintools"] == member_drvs["binutils"]
    # the libc of stage 1 links the seed glibc's lib and include (its own prefix, not gcc's)
    glibc_out = re.search(r"ln -s (/nix/store/[a-z0-9]{32}-glibc-2\.40)/lib ", bridged["libcBuild"])
    assert glibc_out and f"{glibc_out.group(1)}/include $out/include" in bridged["libcBuild"]
    assert {"bintools", "libc", "coreutils", "gnugrep", "runtimeShell", "stdenvNoCC"} <= set(
        bridged["wrapperArgs"]
    )


def test_minimal_bootstrap_is_the_seed_set(bridged: dict) -> None:
    assert set(bridged["minimalBootstrap"]) == set(SEED_SET["members"]) | {"recurseForDerivations"}


def test_version_check_passes_and_warns_on_a_newer_seed(nix: str) -> None:
    older_glibc = '{ glibc = { version = "2.39"; }; bash = { version = "5.3"; }; }'
    proc = harness(nix, "result.versionsOk", toplevel=older_glibc)
    assert json.loads(proc.stdout) is False
    assert "seed glibc 2.40 (from live-bootstrap) is newer than pkgs.glibc 2.39" in proc.stderr
    same = '{ glibc = { version = "2.40"; }; linuxHeaders = { version = "6.18"; }; }'
    assert json.loads(harness(nix, "result.versionsOk", toplevel=same).stdout) is True


def test_a_missing_member_is_named(nix: str) -> None:
    proc = harness(nix, "result.initialPath", check=False, drop='[ "patchelf" ]')
    assert proc.returncode != 0
    assert "part 1's seed set has no member 'patchelf'" in proc.stderr


def test_the_reads_are_found_in_all_three_forms(nix: str) -> None:
    reads = eval_json(nix, "reads")
    # stage0.<attr>, "${stage0.bash}", inherit (stage0) ...; a comment is not a read
    assert set(reads) == {
        "bash",
        "dummyStdenv",
        "initialPath",
        "disallowedInFinalStdenv",
        "minimal-bootstrap",
        "isMinimalBootstrap",
        "checkBootstrapPackages",
        "bootstrapTools",  # read only when isMinimalBootstrap is false: provided, never forced
    }


def _copy_standin(tmp_path: Path) -> Path:
    tree = tmp_path / "standin"
    shutil.copytree(STANDIN, tree)
    return tree


def test_a_read_we_do_not_provide_is_one_error_naming_revision_and_attribute(
    nix: str, tmp_path: Path
) -> None:
    tree = _copy_standin(tmp_path)
    default = tree / "pkgs/stdenv/linux/default.nix"
    text = default.read_text()
    text = text.replace(
        '  stages = "bridged";', '  stages = "bridged";\n  x = stage0.bootstrapTarball;'
    )
    # a comment mentioning a read is not one
    default.write_text("# stage0.onlyInAComment\n" + text)
    proc = harness(nix, "result.stages", check=False, standin=tree)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        (
            "error: stdenv-bridge: nixpkgs standin-rev: pkgs/stdenv/linux/default.nix reads "
            "stage0.bootstrapTarball, which stdenv-bridge/stage0.nix does not provide"
        )
    ]


def test_a_nixpkgs_without_stage0_nix_is_refused(nix: str, tmp_path: Path) -> None:
    tree = _copy_standin(tmp_path)
    (tree / "pkgs/stdenv/linux/stage0.nix").unlink()
    proc = harness(nix, "result.stages", check=False, standin=tree)
    assert proc.returncode != 0
    assert "nixpkgs standin-rev has no pkgs/stdenv/linux/stage0.nix" in proc.stderr


# -- (b) the redirection and the fall-through --------------------------------------------------
def test_other_imports_of_default_nix_are_not_redirected(bridged: dict) -> None:
    assert bridged["commonPreHook"] == "export NIX_ENFORCE_PURITY=1"


@pytest.mark.parametrize(
    ("args", "system", "libc", "cross"),
    [
        ({"system": '"i686-linux"'}, "i686-linux", "glibc", False),
        ({"libc": '"musl"'}, "x86_64-linux", "musl", False),
        ({"cross": "true"}, "x86_64-linux", "glibc", True),
        ({"replaceStdenv": "(_: null)"}, "x86_64-linux", "glibc", False),
    ],
)
def test_every_other_configuration_gets_nixpkgs_default_stages(
    nix: str, args: dict, system: str, libc: str, cross: bool
) -> None:
    result = eval_json(nix, "result", **args)
    assert result == {"stages": "nixpkgs-default", "system": system, "libc": libc, "cross": cross}


def test_the_flakes_outputs_are_wired_through_nixpkgs_top_level(nix: str) -> None:
    """stdenv-bridge/default.nix on the stand-in tree (its default.nix stands for nixpkgs' top
    level), past the guard with a Nix version of 2.99 given as an argument: the bridged stdenv
    and hello, Hydra's partners from the unbridged import, legacyPackages by the unbridged
    names."""
    apply = (
        "o: { stdenv = o.packages.stdenv.stages; hello = o.packages.hello.stdenvStages;"
        " partner = o.hydraPartners.stdenv.stages; legacy = builtins.attrNames o.legacyPackages;"
        " legacyStdenv = o.legacyPackages.stdenv.stages; }"
    )
    expr = f'(import {STANDIN}/harness.nix {{ repo = {REPO}; }}).outputs "2.99"'
    got = json.loads(run_nix("eval", "--impure", "--json", "--expr", expr, "--apply", apply).stdout)
    assert got == {
        "stdenv": "bridged",
        "hello": "bridged",
        "partner": "nixpkgs-default",
        "legacy": ["hello", "stdenv"],
        "legacyStdenv": "bridged",
    }
    old = f'(import {STANDIN}/harness.nix {{ repo = {REPO}; }}).outputs "2.8.0"'
    proc = run_nix(
        "eval", "--impure", "--json", "--expr", old, "--apply", "o: o.packages.stdenv", check=False
    )
    assert proc.returncode != 0
    assert "needs Nix >= 2.18 (nixpkgs standin-rev on nixos-26.05" in proc.stderr
    legacy = run_nix("eval", "--impure", "--json", "--expr", old, "--apply", "o: o.legacyPackages")
    assert json.loads(legacy.stdout) == {}


# -- (c) the flake on the real Nix 2.8: the guard and the laziness ----------------------------
def _flake(tree: Path, attr: str, *extra: str, scratch: Path | None = None):
    """The real flake with the live-bootstrap input from a materialized snapshot and nixpkgs
    replaced by a flake whose outputs throw: anything that forces nixpkgs fails (whether or not
    the pinned nixpkgs happens to be in the store)."""
    poison = (scratch or tree.parent) / "no-nixpkgs"
    poison.mkdir(exist_ok=True)
    (poison / "flake.nix").write_text('{ outputs = _: throw "nixpkgs was forced"; }\n')
    return run_nix(
        "eval",
        "--json",
        f"{REPO}#{attr}",
        "--override-input",
        "live-bootstrap",
        f"path:{tree}",
        "--override-input",
        "nixpkgs",
        f"path:{poison}",
        "--no-write-lock-file",
        *extra,
        check=False,
    )


def _nix_version() -> str:
    out = subprocess.run(["nix", "--version"], capture_output=True, text=True).stdout
    return out.split()[-1]


def _older(a: str, b: str) -> bool:
    return [int(x) for x in a.split(".")[:2]] < [int(x) for x in b.split(".")[:2]]


@pytest.mark.parametrize(
    "attr",
    [
        "packages.x86_64-linux.stdenv",
        "packages.x86_64-linux.hello",
        "packages.x86_64-linux.nixos-iso",
        "hydraJobs.bridged.nixos-iso",
        "checks.x86_64-linux.no-nixpkgs-bootstrap-in-hello",
    ],
)
def test_a_bridged_output_on_an_old_nix_fails_with_one_line(
    materialized_pinned: Path, nix: str, attr: str
) -> None:
    found = _nix_version()
    if not _older(found, PIN["nix_required"]):
        pytest.skip(f"this Nix ({found}) is new enough for the pinned nixpkgs")
    proc = _flake(materialized_pinned, f"{attr}.drvPath")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    # the guard comes first: nixpkgs (which throws here) is never reached
    assert "nixpkgs was forced" not in proc.stderr
    assert f"needs Nix >= {PIN['nix_required']}" in errors[0]
    assert f"this is Nix {found}" in errors[0]


def test_bridged_names_are_there_without_forcing_nixpkgs(
    materialized_pinned: Path, nix: str
) -> None:
    # nixpkgs throws when forced: listing names and evaluating chain outputs must not force it
    names = json.loads(
        _flake(materialized_pinned, "packages.x86_64-linux", "--apply", "builtins.attrNames").stdout
    )
    assert {"stdenv", "hello", "nixos-iso", "live-bootstrap", "stage0"} <= set(names)
    i686 = json.loads(
        _flake(materialized_pinned, "packages.i686-linux", "--apply", "builtins.attrNames").stdout
    )
    assert not {"stdenv", "hello", "nixos-iso"} & set(i686)
    jobs = json.loads(
        _flake(materialized_pinned, "hydraJobs.bridged", "--apply", "builtins.attrNames").stdout
    )
    assert jobs == ["hello", "nixos-iso", "stdenv"]


def test_chain_checks_evaluate_beside_the_bridged_legacy_packages(
    pinned_source: Path, tmp_path: Path, nix: str
) -> None:
    # a full attribute path outside packages.<system> makes Nix look in legacyPackages too: on
    # an old Nix that set is empty, so the chain's checks still evaluate (over the real input:
    # steps-fresh rightly refuses a data-only tree, which lacks the stage0-posix scripts)
    drv = _flake(pinned_source, "checks.x86_64-linux.steps-fresh.drvPath", scratch=tmp_path)
    assert drv.returncode == 0, drv.stderr
    assert json.loads(drv.stdout).endswith("-steps-fresh.drv")


def test_the_guard_reads_the_fetched_tree(nix: str, tmp_path: Path) -> None:
    """The second check of nix-version.nix, on stand-in trees (lib/minver.nix, as nixpkgs had
    until Aug 2025; lib/minfeatures.nix, as it has since), with the real Nix 2.8."""
    found = _nix_version()
    pin = '{ nix_required = "2.0"; branch = "standin"; }'

    def guard(tree: Path):
        expr = (
            f'(import {REPO}/stdenv-bridge/nix-version.nix {{ pin = {pin}; rev = "r1"; }})'
            f'.forTree {tree} "ok"'
        )
        return run_nix("eval", "--impure", "--json", "--expr", expr, check=False)

    old = tmp_path / "old"
    (old / "lib").mkdir(parents=True)
    (old / "lib/minver.nix").write_text('"99.1"\n')
    proc = guard(old)
    assert proc.returncode != 0
    assert f"needs Nix >= 99.1 (nixpkgs r1, lib/minver.nix); this is Nix {found}" in proc.stderr
    (old / "lib/minver.nix").write_text('"2.3"\n')
    assert json.loads(guard(old).stdout) == "ok"

    new = tmp_path / "new"
    (new / "lib").mkdir(parents=True)
    (new / "lib/minfeatures.nix").write_text(
        'let features = [ { description = "`builtins.nixVersion` reports at least 99.2";\n'
        '  condition = builtins.compareVersions "99.2" builtins.nixVersion != 1; } ];\n'
        "  e = builtins.partition ({ condition, ... }: condition) features;\n"
        "in { all = features; supported = e.right; missing = e.wrong; }\n"
    )
    proc = guard(new)
    assert proc.returncode != 0
    assert "needs Nix >= 99.2 (nixpkgs r1, lib/minfeatures.nix: missing" in proc.stderr
    assert f"this is Nix {found}" in proc.stderr


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (REPO / "stdenv-bridge").glob("*.nix")), ids=str
)
def test_every_bridge_file_parses(nix: str, path: str) -> None:
    """The files the tests above cannot evaluate without nixpkgs (default.nix,
    closure-check.nix) at least parse with Nix 2.8."""
    proc = subprocess.run(
        ["nix-instantiate", "--parse", str(REPO / "stdenv-bridge" / path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


# -- part 1's real seed set through the stand-in consumer ---------------------------------------
def test_part_1s_real_members_meet_the_contract(nix: str) -> None:
    """The contract with the seed set as part 1 builds it (its derivations instantiated from
    the real chain, not built): every member exists under our names, is marked, and the
    consumer's assertions hold."""
    checkout = os.environ.get("LIVE_BOOTSTRAP_CHECKOUT")
    if not checkout:
        pytest.skip(
            "LIVE_BOOTSTRAP_CHECKOUT is not set (a live-bootstrap checkout with submodules)"
        )
    chain = (
        f"(import {REPO}/nix {{ live-bootstrap = {checkout}; steps = {REPO}/steps;"
        ' system = "x86_64-linux"; }).packages'
    )
    has = run_nix("eval", "--impure", "--json", "--expr", f"{chain} ? bridge").stdout.strip()
    if has != "true":
        pytest.skip("part 1's seed set (.#bridge) is not in this tree")
    result = eval_json(nix, "result", bridge=f"{chain}.bridge")
    assert result["stages"] == "bridged"
    assert result["initialPathMarked"] == [True] * len(NIXPKGS_INITIAL_PATH)
    names = [re.sub(r"^bridge-|-[0-9][0-9.]*$", "", n) for n in result["initialPath"]]
    assert names == NIXPKGS_INITIAL_PATH
    assert len(result["disallowed"]) == len(SEED_SET["members"])


# -- (d) the real nixpkgs ----------------------------------------------------------------------
def _real_nixpkgs() -> Path:
    checkout = os.environ.get("NIXPKGS_CHECKOUT")
    if not checkout:
        pytest.skip("NIXPKGS_CHECKOUT is not set (a checkout of the pinned nixpkgs)")
    found = _nix_version()
    if _older(found, PIN["nix_required"]):
        pytest.skip(f"the real nixpkgs needs Nix >= {PIN['nix_required']}; this is Nix {found}")
    return Path(checkout)


def test_real_default_nix_reads_only_what_we_provide(nix: str) -> None:
    tree = _real_nixpkgs()
    expr = f'(import {REPO}/stdenv-bridge/contract.nix {{ nixpkgs = {tree}; rev = "checkout"; }}).reads'
    reads = json.loads(run_nix("eval", "--impure", "--json", "--expr", expr).stdout)
    assert {"initialPath", "dummyStdenv", "bash"} <= set(reads)
    assert set(reads) <= set(eval_json(nix, "provided"))
    # the scan cannot see reads through `with stage0;`: upstream must not use it
    assert "with stage0;" not in (tree / "pkgs/stdenv/linux/default.nix").read_text()


def test_real_nixpkgs_stages_evaluate_over_our_stage0(nix: str) -> None:
    """Nixpkgs' own stage logic and assertions, evaluated for real over our stage0 (the members
    are the harness's stand-ins: instantiated, not built)."""
    tree = _real_nixpkgs()
    for attr in ("stdenv.drvPath", "hello.drvPath"):
        proc = harness(nix, f"real.{attr}", check=False, nixpkgs=str(tree))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout).endswith(".drv")


def test_pin_records_the_checkouts_minimum(nix: str) -> None:
    tree = _real_nixpkgs()
    minfeatures = tree / "lib/minfeatures.nix"
    text = (
        minfeatures.read_text() if minfeatures.is_file() else (tree / "lib/minver.nix").read_text()
    )
    assert re.search(rf"\b{re.escape(PIN['nix_required'])}\b", text)


def _stage0_trees() -> list[tuple[Path, str]]:
    """Trees holding nixpkgs' real lib/ and pkgs/stdenv/linux/stage0.nix, with the config
    expression to call it with: NIXPKGS_STAGE0_TREES (colon-separated; e.g. scratch trees of
    nixpkgs' real stage0.nix and lib with stub packages for what it imports, evaluable by any
    Nix) and the NIXPKGS_CHECKOUT (its own evaluated config; needs a Nix new enough)."""
    trees = [
        (Path(t), "{ rewriteURL = url: url; }")
        for t in os.environ.get("NIXPKGS_STAGE0_TREES", "").split(":")
        if t
    ]
    checkout = os.environ.get("NIXPKGS_CHECKOUT")
    if checkout and not _older(_nix_version(), PIN["nix_required"]):
        config = f'(import {checkout} {{ localSystem = {{ system = "x86_64-linux"; }}; }}).config'
        trees.append((Path(checkout), config))
    if not trees:
        pytest.skip("neither NIXPKGS_STAGE0_TREES nor NIXPKGS_CHECKOUT (with Nix new enough) set")
    return trees


def test_our_stage0_returns_all_that_nixpkgs_own_stage0_returns(nix: str) -> None:
    """The stage0.nix of nixpkgs (whatever shape the tree has) evaluated beside ours: default.nix
    can read only what nixpkgs' own returns, so ours must return every attribute of it, with the
    same dummyStdenv, overrides, wrapper call, initialPath order and markers."""
    for tree, config in _stage0_trees():
        expr = (
            f"import {STANDIN}/compare-stage0.nix "
            f"{{ repo = {REPO}; nixpkgs = {tree}; config = {config}; }}"
        )
        got = json.loads(run_nix("eval", "--impure", "--json", "--expr", expr).stdout)
        up, ours = got["upstream"], got["ours"]
        assert got["missing"] == [], tree
        for key in ("isMinimalBootstrap", "dummyName", "overrides", "wrapperArgs", "shellIsDrv"):
            assert ours[key] == up[key], (tree, key)
        assert up["initialPath"] == ours["initialPath"] == len(NIXPKGS_INITIAL_PATH)
        assert up["provenance"] == ours["provenance"] == [True] * 5
        assert ours["initialPathMarked"] == [True] * len(NIXPKGS_INITIAL_PATH)
        # nixpkgs' initialPath, by member: "-static" dropped, its compiler (gcc, gcc-glibc) as gcc
        names = [re.sub(r"-static$", "", n) for n in got["upstreamInitialPath"]]
        names = ["gcc" if n.startswith("gcc") else n for n in names]
        assert names == NIXPKGS_INITIAL_PATH == SEED_SET["initialPath"]
