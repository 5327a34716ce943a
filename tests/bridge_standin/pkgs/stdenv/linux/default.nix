# Stand-in of nixpkgs' pkgs/stdenv/linux/default.nix (tests/bridge_standin/README.md): reads
# from ./stage0.nix what nixpkgs' file reads and runs nixpkgs' provenance assertions.
{ lib, localSystem, crossSystem, config, overlays, crossOverlays ? [ ] }:
assert crossSystem == localSystem;
let
  common = import ./common.nix;
  stage0 = import ./stage0.nix { inherit localSystem config lib; bootstrapFiles = null; };
  inherit (stage0) isMinimalBootstrap checkBootstrapPackages;

  # nixpkgs' predicate: a package from the bootstrap, by its passthru marker
  isFromBootstrapFiles = pkg: pkg.passthru.isFromBootstrapFiles or pkg.passthru.isFromMinBootstrap or false;

  # a previous stage as nixpkgs' stageFun gives the overrides: self.stdenv.mkDerivation
  mkDerivation = a: derivation {
    name = "${a.pname}-${a.version}";
    system = localSystem.system;
    builder = "${stage0.bash}/bin/bash";
    args = [ "-c" a.buildCommand ];
  } // { passthru = a.passthru or { }; inherit (a) buildCommand; };
  self = stage0Pkgs // {
    stdenv = { inherit mkDerivation; name = "${stage0.dummyStdenv.name}-stdenv-linux"; };
    stdenvNoCC = self.stdenv;
    libc = stage0Pkgs.${localSystem.libc};
  };
  stage0Pkgs = stage0.dummyStdenv.overrides self { };

  stage1 = stage0Pkgs;
  libc = stage1.${localSystem.libc};
in
assert isFromBootstrapFiles stage1.binutils.bintools;
assert isFromBootstrapFiles libc;
assert isFromBootstrapFiles stage1.gcc-unwrapped;
assert isFromBootstrapFiles stage1.coreutils;
assert isFromBootstrapFiles stage1.gnugrep;
{
  stages = "bridged";
  inherit (common) commonPreHook;
  shell = "${stage0.bash}/bin/bash";
  initialPath = map (p: p.name) stage0.initialPath;
  initialPathMarked = map isFromBootstrapFiles stage0.initialPath;
  disallowed = map (p: p.drvPath) stage0.disallowedInFinalStdenv;
  inherit isMinimalBootstrap;
  # as nixpkgs keeps stdenv.bootstrapTools only for the prebuilt-bootstrapFiles systems
  bootstrapTools = if isMinimalBootstrap then null else stage0.bootstrapTools;
  minimalBootstrap = builtins.attrNames stage0.minimal-bootstrap;
  versionsOk = checkBootstrapPackages config.toplevelStandIn;
  overrides = builtins.attrNames stage0Pkgs;
  ccWrapperStdenv = stage0Pkgs.ccWrapperStdenv.name;
  libcBuild = libc.buildCommand;
  libcName = libc.name;
  gccUnwrapped = stage0Pkgs.gcc-unwrapped.drvPath;
  # what cc-wrapper consults on the compiler (nixpkgs' bootstrap-tools always carried them)
  gccLangs = let cc = stage0Pkgs.gcc-unwrapped; in [ (cc.langC or false) (cc.langCC or false) (cc.isGNU or false) ];
  bintools = stage0Pkgs.binutils.bintools.drvPath;
  runtimeShell = stage0Pkgs.binutils.runtimeShell;
  wrapperArgs = stage0Pkgs.binutils.wrapperArgs;
}
