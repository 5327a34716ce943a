# The flake check "no nixpkgs bootstrap in the closure": a bridged output's derivation closure
# must not contain any derivation of nixpkgs' own bootstrap. A cross or i686 package set (which
# re-import nixpkgs without our stdenvStages) would pull one in silently; this makes it loud.
#
# The forbidden set is nixpkgs' own definition of its bootstrap: every derivation of the
# minimal-bootstrap scope its own pkgs/stdenv/linux/stage0.nix returns (for x86_64-linux and
# i686-linux, its two minimal-bootstrap systems), by .drv path, plus the fixed-output downloads
# of bootstrapFiles by name (closure-policy.json). The check itself runs with the seed set's
# bash, coreutils and grep: nothing of nixpkgs builds it.
{ nixpkgs, rev, system, bridge }:
let
  inherit (builtins) attrValues concatMap filter isAttrs concatStringsSep functionArgs
    intersectAttrs attrNames;
  data = builtins.fromJSON (builtins.readFile ./closure-policy.json);
  lib = import "${nixpkgs}/lib";

  isDrv = v: isAttrs v && (v.type or null) == "derivation";
  # a value that throws (meta checks, unsupported systems) is not one of them
  safe = f: v: let r = builtins.tryEval (f v); in r.success && r.value;
  # derivations of the scope and of the sets one level down (stage0-posix's scope, mes,
  # tinycc-*, tests: nixpkgs' minimal-bootstrap at 0150e189 nests them so)
  drvsOf = scope: concatMap
    (v:
      if safe isDrv v then [ v ]
      else if safe isAttrs v then filter (safe isDrv) (attrValues v)
      else [ ])
    (attrValues scope);

  nixpkgsStage0 = localSystem:
    let
      f = import "${nixpkgs}/pkgs/stdenv/linux/stage0.nix";
      args = {
        localSystem = lib.systems.elaborate localSystem;
        inherit lib;
        # nixpkgs' evaluated config (stage0.nix reads e.g. config.rewriteURL)
        inherit (import nixpkgs { localSystem = { inherit system; }; }) config;
        bootstrapFiles = null; # ignored on the minimal-bootstrap systems
      };
    in
    f (intersectAttrs (functionArgs f) args // (if (functionArgs f) == { } then args else { }));

  # a member that does not evaluate on a system (meta checks) cannot be in any closure there
  drvPathOr = d: let r = builtins.tryEval d.drvPath; in if r.success then [ r.value ] else [ ];
  forbiddenDrvs = concatMap
    (s: concatMap drvPathOr (drvsOf ((nixpkgsStage0 s).minimal-bootstrap or { })))
    [ "x86_64-linux" "i686-linux" ];
in
{
  # for `orchestrator audit` (flake output lib.bridge.policy)
  policy = {
    inherit rev;
    forbidden_drv_paths = forbiddenDrvs;
    inherit (data) forbidden_fod_names forbidden_url_prefixes binary_bootstraps;
  };

  check = import ./closure-check-drv.nix {
    inherit system forbiddenDrvs;
    forbiddenNames = attrNames data.forbidden_fod_names;
    inherit (bridge) bash coreutils gnugrep;
  };
}
