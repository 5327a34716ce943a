# nixpkgs' own pkgs/stdenv/linux/stage0.nix next to ours, for x86_64-linux glibc (tests only).
# `nixpkgs` is a tree with nixpkgs' lib/ and pkgs/stdenv/linux/stage0.nix: a real checkout, or a
# scratch tree of nixpkgs' real stage0.nix and lib with stub packages for what it imports.
# Everything default.nix can read from a stage0 is what nixpkgs' own stage0 returns on its
# minimal-bootstrap branch; so ours must return every one of those attributes, with the same
# shapes and markers: the names, dummyStdenv's name and overrides, what bintools-wrapper is
# called with, initialPath (length, order, markers), and stage 1's provenance predicate (nixpkgs'
# `passthru.isFromBootstrapFiles or passthru.isFromMinBootstrap`) on what the overrides give.
{ repo, nixpkgs, config ? { rewriteURL = url: url; } }:
let
  lib = import (nixpkgs + "/lib");
  inherit (builtins) attrNames filter functionArgs intersectAttrs length map;
  localSystem = lib.systems.elaborate "x86_64-linux";

  upstreamF = import (nixpkgs + "/pkgs/stdenv/linux/stage0.nix");
  upstream = upstreamF (intersectAttrs (functionArgs upstreamF)
    { inherit localSystem config lib; bootstrapFiles = null; });

  # part 1's members as stand-ins (harness.nix's), instantiated, never built
  members = (import ./harness.nix { inherit repo; }).members;
  ours = import (repo + "/stdenv-bridge/stage0.nix") { bridge = members; inherit nixpkgs; }
    { inherit localSystem config lib; };

  # one stand-in previous stage for both overrides
  self = {
    stdenv = { mkDerivation = a: a // { type = "derivation"; name = a.pname; }; };
    stdenvNoCC = "stdenvNoCC"; coreutils = "coreutils"; gnugrep = "gnugrep"; libc = "libc";
  };
  over = s: s.dummyStdenv.overrides self { };
  isFrom = pkg: pkg.passthru.isFromBootstrapFiles or pkg.passthru.isFromMinBootstrap or false;
  provenance = o: map isFrom [ o.binutils.bintools o.${localSystem.libc} o.gcc-unwrapped o.coreutils o.gnugrep ];
  summary = s: {
    attrs = attrNames s;
    isMinimalBootstrap = s.isMinimalBootstrap;
    dummyName = s.dummyStdenv.name;
    overrides = attrNames (over s);
    wrapperArgs = (over s).binutils.wrapperArgs or null;
    initialPath = length s.initialPath;
    initialPathMarked = map isFrom s.initialPath;
    provenance = provenance (over s);
    shellIsDrv = (s.bash.type or null) == "derivation";
    hasCheck = s ? checkBootstrapPackages;
  };
in
{
  upstream = summary upstream;
  ours = summary ours;
  # what nixpkgs' stage0 returns and ours does not: default.nix may read any of these
  missing = filter (a: !(ours ? ${a})) (attrNames upstream);
  upstreamInitialPath = map (d: d.pname or d.name) upstream.initialPath;
  oursInitialPath = map (d: d.name) ours.initialPath;
}
