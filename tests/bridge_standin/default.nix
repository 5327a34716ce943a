# Stands for nixpkgs' top level (pkgs/top-level/default.nix): calls stdenvStages as nixpkgs does
# and returns the stand-in's summary as `stdenv`, plus a `hello` built "with" it.
{ localSystem, stdenvStages ? import ./pkgs/stdenv, config ? { }, ... }:
let
  elaborated = { libc = "glibc"; isLinux = true; } // localSystem;
  stdenv = stdenvStages {
    lib = null;
    localSystem = elaborated;
    crossSystem = elaborated;
    config = { toplevelStandIn = { }; } // config;
    overlays = [ ];
    crossOverlays = [ ];
  };
in
{
  inherit stdenv;
  hello = { name = "hello-2.12.2"; stdenvStages = stdenv.stages; };
}
