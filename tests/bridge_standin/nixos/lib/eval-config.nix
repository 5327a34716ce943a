# Stands for nixpkgs' nixos/lib/eval-config.nix (tests only): instead of a system, a summary of
# how it was called -- the `system` argument (which the real file turns into
# `nixpkgs.system = mkDefault system`), whose package set the modules get (`pkgs`, else the one
# nixpkgs' own nixpkgs.nix module would import: the top level with its default stages), the
# modules by file name, and what the inline modules (release.nix's versionModule) set.
{ system ? "(builtins.currentSystem)", pkgs ? null, modules }:
let
  lib = { mkIf = cond: value: if cond then value else "(unset)"; };
  config = { system.nixos.release = "26.05"; };
  named = map (m: if builtins.isFunction m || builtins.isAttrs m then "(inline)" else baseNameOf (toString m)) modules;
  inline = map (m: m { inherit config lib; }) (builtins.filter builtins.isFunction modules);
  set = if pkgs != null then pkgs else import ../.. { localSystem = { inherit system; }; };
in
{
  config.system.build = {
    isoImage = {
      inherit system;
      modules = named;
      stages = set.stdenv.stages;
      nixos = map (m: m.system.nixos) inline;
    };
    toplevel = { name = "toplevel"; stages = set.stdenv.stages; };
  };
}
