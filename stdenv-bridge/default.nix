# The nixpkgs side of the bridge: nixpkgs' own stdenv stages on the chain's seed set, and what is
# built from them (legacyPackages, stdenv, hello, the minimal installation ISO), each behind the
# Nix-version guard. Nothing here is evaluated unless a bridged output is asked for: the chain's
# outputs never force nixpkgs.
#
#   nixpkgs: the pinned nixpkgs (flake input or a source tree)
#   rev:     its revision, for messages (from flake.lock, so that naming it needs no fetch)
#   bridge:  part 1's seed set, members by name
{ nixpkgs
, rev
, bridge
, system ? "x86_64-linux"
, pin ? builtins.fromJSON (builtins.readFile ./nixpkgs-pin.json)
, nixVersion ? builtins.nixVersion
}:
let
  # after the fetch: the tree's own revision (an --override-input path has none: its narHash)
  treeRev = if builtins.isAttrs nixpkgs then nixpkgs.rev or nixpkgs.narHash or rev else rev;

  version = import ./nix-version.nix { inherit pin rev nixVersion; };
  treeVersion = import ./nix-version.nix { inherit pin nixVersion; rev = treeRev; };
  # the pin's minimum first (no fetch), then the fetched tree's own; on an older Nix the output
  # is a derivation-shaped value whose drvPath names the Nix it needs (nix-version.nix)
  guard = name: value:
    if version.newEnough then treeVersion.output name nixpkgs value
    else version.output name nixpkgs value;

  stage0 = import ./stage0.nix { inherit bridge nixpkgs; };
  stages = import ./stdenv-stages.nix { inherit nixpkgs stage0; rev = treeRev; };

  pkgs = import nixpkgs { localSystem = { inherit system; }; inherit (stages) stdenvStages; };

  # nixpkgs as Hydra evaluates it (its own bootstrap): the partner of every bridged path.
  unbridged = import nixpkgs { localSystem = { inherit system; }; };

  # Hydra's nixos.iso_minimal job, as nixos/release.nix's makeIso builds it: eval-config.nix
  # with `system` (so nixpkgs.system = mkDefault system, as in Hydra's evaluation), the module
  # release.nix names for iso_minimal -- installation-cd-minimal-combined.nix since PR #355893
  # (the LTS kernel plus a latest-kernel specialisation) -- and release.nix's versionModule.
  # The same entry point for ours (only `pkgs` differs), so that the two ISOs can differ only
  # through the bootstrap. (lib.nixosSystem would add nixpkgs.flake.source, which puts the
  # nixpkgs source path into the image's registry and NIX_PATH: a difference Hydra's job does
  # not have.)
  #
  # versionSuffix is ".<revCount>.<shortRev>" on a release branch, from Hydra's git input:
  # revCount (a GitHub flake input has none) and shortRev, git's abbreviation of the rev in the
  # nixpkgs repository (12 characters there, as channel names show). Both are data in
  # nixpkgs-pin.json; while either is null the label, and every path that embeds it, differs.
  versionSuffix =
    let
      count = pin.revCount or null;
      short = pin.shortRev or null;
      bad = what: throw "stdenv-bridge/nixpkgs-pin.json: ${what} (see its comment for how to obtain it)";
    in
    if count == null || short == null then null
    else if !(builtins.isInt count && count > 0) then
      bad "revCount must be a positive integer (git rev-list --count ${rev}), not ${builtins.toJSON count}"
    else if !(builtins.isString short && builtins.match "[0-9a-f]{7,40}" short != null
              && builtins.substring 0 (builtins.stringLength short) rev == short) then
      bad "shortRev ${builtins.toJSON short} is not an abbreviation of the pinned rev ${rev}"
    else ".${toString count}.${short}";
  versionModule = { config, lib, ... }: {
    system.nixos.versionSuffix = lib.mkIf (versionSuffix != null) versionSuffix;
    system.nixos.revision = treeRev;
    system.stateVersion = config.system.nixos.release;
  };
  isoModule = "${nixpkgs}/nixos/modules/installer/cd-dvd/${pin.iso_module}";
  isoOf = extra:
    let
      evaluated = import "${nixpkgs}/nixos/lib/eval-config.nix" ({
        inherit system;
        modules = [ isoModule versionModule ];
      } // extra);
      inherit (evaluated.config.system.build) isoImage toplevel;
    in
    # the image hides its store paths in a compressed squashfs: `verify --pair-with-hydra`
    # pairs the system's closure through this root as well
    isoImage // { hydraPairRoots = [ toplevel ]; };

  ourIso = isoOf { inherit pkgs; };

  # Hydra's boot tests of the minimal ISO (release.nix: tests.boot from nixos/tests/boot.nix):
  # BIOS and UEFI CD-ROM boots in QEMU. boot.nix builds its ISO with `nixpkgs.pkgs = pkgs`
  # (installation-cd-minimal.nix plus test-instrumentation.nix), so handing it the bridged set
  # boots an ISO built entirely on our bootstrap, exactly as Hydra boots its own. Needs KVM.
  bootTests = import "${nixpkgs}/nixos/tests/boot.nix" { inherit system pkgs; };
  bootTest = name:
    let t = bootTests.${name} or (throw "stdenv-bridge: nixpkgs ${treeRev}: nixos/tests/boot.nix has no test ${name}");
    in t.test or t;

  closure = import ./closure-check.nix { inherit nixpkgs system bridge; rev = treeRev; };
in
{
  inherit stages;

  # Nix looks up every installable that is not under packages.<system> (`.#checks.…`,
  # `.#hydraJobs.…`) in legacyPackages.<system> too, which forces this value: behind the guard it
  # would make every such lookup fail on an old Nix. So on a Nix older than the pin needs it is
  # empty (the chain's outputs still evaluate); on a new one it is the bridged nixpkgs, and that
  # lookup evaluates nixpkgs' top level (docs/bridge-nixpkgs.md, "Laziness") -- the names of
  # the unbridged set, so that such a lookup never evaluates the bridge itself.
  legacyPackages =
    if version.newEnough
    then treeVersion.forTree nixpkgs (builtins.mapAttrs (name: _: pkgs.${name}) unbridged)
    else { };
  packages = {
    stdenv = guard "stdenv" pkgs.stdenv;
    hello = guard "hello" pkgs.hello;
    nixos-iso = guard "nixos-iso" ourIso;
  };

  # The same attributes without the bridge: what Hydra built (orchestrator verify pairs ours
  # with these).
  hydraPartners = {
    stdenv = guard "stdenv" unbridged.stdenv;
    hello = guard "hello" unbridged.hello;
    nixos-iso = guard "nixos-iso" (isoOf { });
  };

  checks = {
    no-nixpkgs-bootstrap-in-stdenv = guard "no-nixpkgs-bootstrap-in-stdenv" (closure.check "stdenv" pkgs.stdenv);
    no-nixpkgs-bootstrap-in-hello = guard "no-nixpkgs-bootstrap-in-hello" (closure.check "hello" pkgs.hello);
    no-nixpkgs-bootstrap-in-nixos-iso = guard "no-nixpkgs-bootstrap-in-nixos-iso"
      (closure.check "nixos-iso" ourIso);
    nixos-iso-boot-bios-cdrom = guard "nixos-iso-boot-bios-cdrom" (bootTest "biosCdrom");
    nixos-iso-boot-uefi-cdrom = guard "nixos-iso-boot-uefi-cdrom" (bootTest "uefiCdrom");
  };

  # nixpkgs' own bootstrap (what the closure check forbids) and the binary bootstraps nixpkgs
  # takes, for `orchestrator audit`.
  policy = version.beforeFetch (treeVersion.forTree nixpkgs closure.policy);
}
