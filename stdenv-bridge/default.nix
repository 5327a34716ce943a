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
  # the pin's minimum first (no fetch), then the fetched tree's own
  guard = value: version.beforeFetch (treeVersion.forTree nixpkgs value);

  stage0 = import ./stage0.nix { inherit bridge nixpkgs; };
  stages = import ./stdenv-stages.nix { inherit nixpkgs stage0; rev = treeRev; };

  pkgs = import nixpkgs { localSystem = { inherit system; }; inherit (stages) stdenvStages; };

  # nixpkgs as Hydra evaluates it (its own bootstrap): the partner of every bridged path.
  unbridged = import nixpkgs { localSystem = { inherit system; }; };

  # Hydra's nixos.iso_minimal job, as nixos/release.nix's makeIso builds it: eval-config.nix
  # with the installation-cd-minimal module and release.nix's versionModule. The same entry
  # point for ours (only nixpkgs.pkgs differs), so that the two ISOs can differ only through
  # the bootstrap. (lib.nixosSystem would add nixpkgs.flake.source, which puts the nixpkgs
  # source path into the image's registry and NIX_PATH: a difference Hydra's job does not have.)
  # versionSuffix needs the git revCount Hydra's jobset input has and a GitHub input lacks:
  # nixpkgs-pin.json carries it (null: the version label, and so every path that embeds it,
  # differs from Hydra's).
  versionModule = { config, lib, ... }: {
    system.nixos.versionSuffix = lib.mkIf ((pin.revCount or null) != null)
      ".${toString pin.revCount}.${builtins.substring 0 7 treeRev}";
    system.nixos.revision = treeRev;
    system.stateVersion = config.system.nixos.release;
  };
  isoOf = extra:
    let
      evaluated = import "${nixpkgs}/nixos/lib/eval-config.nix" (extra // {
        modules = [
          "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"
          versionModule
        ] ++ extra.modules or [ ];
      });
      inherit (evaluated.config.system.build) isoImage toplevel;
    in
    # the image hides its store paths in a compressed squashfs: `verify --pair-with-hydra`
    # pairs the system's closure through this root as well
    isoImage // { hydraPairRoots = [ toplevel ]; };

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
    stdenv = guard pkgs.stdenv;
    hello = guard pkgs.hello;
    nixos-iso = guard (isoOf { system = null; modules = [{ nixpkgs.pkgs = pkgs; }]; });
  };

  # The same attributes without the bridge: what Hydra built (orchestrator verify pairs ours
  # with these).
  hydraPartners = {
    stdenv = guard unbridged.stdenv;
    hello = guard unbridged.hello;
    nixos-iso = guard (isoOf { inherit system; });
  };

  checks = {
    no-nixpkgs-bootstrap-in-stdenv = guard (closure.check "stdenv" pkgs.stdenv);
    no-nixpkgs-bootstrap-in-hello = guard (closure.check "hello" pkgs.hello);
  };

  # nixpkgs' own bootstrap (what the closure check forbids) and the binary bootstraps nixpkgs
  # takes, for `orchestrator audit`.
  policy = guard closure.policy;
}
