# stdenvStages for `import nixpkgs { stdenvStages = ...; }`: nixpkgs' own Linux stages
# (pkgs/stdenv/linux/default.nix, unmodified, with all its assertions) with exactly one import
# redirected: its `./stage0.nix` becomes ours. Everything else -- the stage functions, the
# bintools/cc wrappers, the final stdenv and its disallowedRequisites -- is nixpkgs' code.
#
# Every other configuration falls through to nixpkgs' own pkgs/stdenv (the same choice
# pkgs/stdenv/default.nix makes, at nixpkgs 0145c6da): cross, replaceStdenv, musl, i686,
# darwin, ... Those bootstrap from nixpkgs' own seed; the closure check (closure-check.nix) shows
# whether any of them reaches a bridged output.
#
#   nixpkgs: the nixpkgs source tree      rev: its revision, for messages
#   stage0:  ./stage0.nix applied to { bridge, nixpkgs }
{ nixpkgs, rev, stage0 }:
let
  linuxDir = "${nixpkgs}/pkgs/stdenv/linux";
  contract = import ./contract.nix { inherit nixpkgs rev; };

  # scopedImport is lexical: only default.nix's own `import` calls see this one; the files it
  # imports (../generic, the wrappers, ...) use the ordinary import.
  redirected = builtins.scopedImport
    {
      import = path:
        if toString path == "${linuxDir}/stage0.nix" then stage0 else import path;
    }
    "${linuxDir}/default.nix";

  bridged = { lib, localSystem, crossSystem, config, overlays, ... }:
    let
      # what our stage0 returns, by name only (nothing is forced)
      provided = builtins.attrNames (stage0 { inherit lib localSystem config; bootstrapFiles = null; });
    in
    contract.check provided
      (redirected { inherit lib localSystem crossSystem config overlays; });

  # Whether nixpkgs' stage selection would pick its Linux stages, and the seed set fits them.
  isBridged = { localSystem, crossSystem, config, crossOverlays ? [ ], ... }:
    !(crossSystem != localSystem || crossOverlays != [ ])
    && (config.replaceStdenv or null) == null
    && localSystem.isLinux
    && localSystem.system == "x86_64-linux"
    && localSystem.libc == "glibc";
in
{
  inherit contract isBridged;

  stdenvStages = args:
    if isBridged args then bridged args else import "${nixpkgs}/pkgs/stdenv" args;
}
