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
  version = import ./nix-version.nix { inherit pin rev nixVersion; };
  # the pin's minimum first (no fetch), then the fetched tree's own
  guard = value: version.beforeFetch (version.forTree nixpkgs value);

  stage0 = import ./stage0.nix { inherit bridge nixpkgs; };
  stages = import ./stdenv-stages.nix { inherit nixpkgs rev stage0; };

  pkgs = import nixpkgs { localSystem = { inherit system; }; inherit (stages) stdenvStages; };

  # nixpkgs as Hydra evaluates it (its own bootstrap): the partner of every bridged path.
  unbridged = import nixpkgs { localSystem = { inherit system; }; };

  # Hydra's nixos.iso_minimal job (nixos/release.nix makeIso) is eval-config.nix with the
  # installation-cd-minimal module; here the same, with nixpkgs.pkgs = the bridged set.
  nixosSystem = nixpkgs.lib.nixosSystem or (args:
    import "${nixpkgs}/nixos/lib/eval-config.nix" ({ system = null; } // args));
  isoOf = pkgsModule: (nixosSystem {
    modules = [
      "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"
      pkgsModule
      ({ config, lib, ... }: {
        # as release.nix's versionModule (its versionSuffix needs Hydra's revCount, which a
        # GitHub input does not have: the ISO's version label differs from Hydra's)
        system.nixos.revision = rev;
        system.stateVersion = lib.mkDefault config.system.nixos.release;
      })
    ];
  }).config.system.build.isoImage;

  closure = import ./closure-check.nix { inherit nixpkgs rev system bridge; };
in
{
  inherit stages;

  # Nix looks up every installable that is not under packages.<system> (`.#checks.…`,
  # `.#hydraJobs.…`) in legacyPackages.<system> too, which forces this value: behind the guard it
  # would make every such lookup fail on an old Nix. So on a Nix older than the pin needs it is
  # empty (the chain's outputs still evaluate); on a new one it is the bridged nixpkgs, and that
  # lookup evaluates nixpkgs' top level (docs/bridge-nixpkgs.md, "Laziness").
  legacyPackages = if version.newEnough then version.forTree nixpkgs pkgs else { };
  packages = {
    stdenv = guard pkgs.stdenv;
    hello = guard pkgs.hello;
    nixos-iso = guard (isoOf { nixpkgs.pkgs = pkgs; });
  };

  # The same attributes without the bridge: what Hydra built (orchestrator verify pairs ours
  # with these).
  hydraPartners = {
    stdenv = guard unbridged.stdenv;
    hello = guard unbridged.hello;
    nixos-iso = guard (isoOf { nixpkgs.hostPlatform = system; });
  };

  checks = {
    no-nixpkgs-bootstrap-in-stdenv = guard (closure.check "stdenv" pkgs.stdenv);
    no-nixpkgs-bootstrap-in-hello = guard (closure.check "hello" pkgs.hello);
  };

  # nixpkgs' own bootstrap (what the closure check forbids) and the binary bootstraps nixpkgs
  # takes, for `orchestrator audit`.
  policy = guard closure.policy;
}
