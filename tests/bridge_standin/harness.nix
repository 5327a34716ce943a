# Calls stdenv-bridge's stdenvStages the way nixpkgs' pkgs/top-level/default.nix does, on the
# stand-in tree (README.md) and stand-in members of part 1's seed set: derivations that are
# instantiated (drvPath), never built.
{ repo
, standin ? ./.
, system ? "x86_64-linux"
, libc ? "glibc"
, cross ? false
, replaceStdenv ? null
, drop ? [ ]            # members to leave out of the seed set
, toplevel ? { }        # stand-in top-level packages for checkBootstrapPackages
, nixpkgs ? null        # a real nixpkgs checkout, for `real`
, bridge ? null         # a real seed set (part 1's .#bridge) instead of the stand-in members
}:
let
  mk = name: version: derivation {
    name = "${name}-${version}";
    inherit version;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "exit 1" ];
  };
  versions = {
    bash = "5.2.15"; coreutils = "9.4"; findutils = "4.9.0"; diffutils = "3.10"; gawk = "5.3.0";
    gnugrep = "3.11"; gnused = "4.8"; gnumake = "4.4.1"; gnupatch = "2.7.6"; gnutar = "1.34";
    gzip = "1.13"; bzip2 = "1.0.8"; xz = "5.4.3"; patchelf = "0.18.0"; binutils = "2.41";
    gcc = "13.3.0"; glibc = "2.40"; linux-headers = "6.12";
  };
  members = builtins.removeAttrs
    (if bridge == null then builtins.mapAttrs mk versions
     else builtins.mapAttrs (n: _: bridge.${n}) versions) drop;
  localSystem = { inherit system libc; isLinux = true; };
  crossSystem = if cross then { system = "aarch64-linux"; libc = "glibc"; isLinux = true; } else localSystem;
  stagesOn = nixpkgs: import (repo + "/stdenv-bridge/stdenv-stages.nix") {
    inherit nixpkgs;
    rev = "standin-rev";
    stage0 = import (repo + "/stdenv-bridge/stage0.nix") { bridge = members; inherit nixpkgs; };
  };
  stages = stagesOn standin;
in
{
  inherit members;
  memberDrvs = builtins.mapAttrs (_: m: m.drvPath) members;
  reads = stages.contract.reads;
  provided = builtins.attrNames
    ((import (repo + "/stdenv-bridge/stage0.nix") { bridge = members; nixpkgs = standin; })
      { inherit localSystem; });
  # stdenv-bridge/default.nix (what the flake exposes) on the stand-in tree, with a Nix version
  # that passes the pin's minimum
  outputs = nixVersion: import (repo + "/stdenv-bridge") {
    nixpkgs = standin;
    rev = "standin-rev";
    bridge = members;
    inherit nixVersion;
  };
  # the same with other facts about the pin (nixpkgs-pin.json's keys) and a hex revision
  outputsWithPin = nixVersion: pinChanges: import (repo + "/stdenv-bridge") {
    nixpkgs = standin;
    rev = "0123456789abcdef0123456789abcdef01234567";
    bridge = members;
    inherit nixVersion;
    pin = builtins.fromJSON (builtins.readFile (repo + "/stdenv-bridge/nixpkgs-pin.json")) // pinChanges;
  };
  # the real nixpkgs (a checkout) with our stdenvStages, over the stand-in members
  real = import nixpkgs {
    localSystem = { inherit system; };
    inherit (stagesOn nixpkgs) stdenvStages;
  };
  result = stages.stdenvStages {
    lib = null;
    inherit localSystem crossSystem;
    config = { toplevelStandIn = toplevel; } // (if replaceStdenv == null then { } else { inherit replaceStdenv; });
    overlays = [ ];
  };
}
