# What nixpkgs' pkgs/stdenv/linux/default.nix reads from its ./stage0.nix, against what ours
# returns, checked before any stage is built: a nixpkgs that moved on fails here with one message
# naming its revision and the missing attributes, not later with "attribute missing" deep inside
# a stage.
#
# The reads are taken from the text of default.nix (it is data here, never evaluated by this
# file): the name bound to `import ./stage0.nix`, then every `<name>.<attr>` and
# `inherit (<name>) <attrs>;` in the file, full-line comments removed. This follows the file as
# it is, so a new read shows up without anyone updating a list; it cannot see reads through
# `with <name>;` or a re-bound alias, which upstream does not use (checked in the real-nixpkgs
# test, tests/test_bridge_nixpkgs.py).
{ nixpkgs, rev }:
let
  inherit (builtins) split filter isList isString concatStringsSep elem head length;

  linuxDir = "${nixpkgs}/pkgs/stdenv/linux";
  where = "nixpkgs ${rev}";

  unique = xs: builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] xs;
  # the capture groups of every match of `re` in `s`
  matches = re: s: filter isList (split re s);
  words = s: filter (w: isString w && w != "") (split "[[:space:]]+" s);

  ident = "[A-Za-z_][A-Za-z0-9_'-]*";

  text =
    let raw = builtins.readFile "${linuxDir}/default.nix";
    in concatStringsSep "\n" (filter isString (split "(^|\n)[[:space:]]*#[^\n]*" raw));

  binders = map (m: builtins.elemAt m 0)
    (matches "(${ident})[[:space:]]*=[[:space:]]*import[[:space:]]+\\./stage0\\.nix" text);

  readsOf = name:
    map (m: builtins.elemAt m 1) (matches "(^|[^A-Za-z0-9_'./-])${name}\\.(${ident})" text)
    ++ builtins.concatMap (m: words (builtins.elemAt m 0))
      (matches "inherit[[:space:]]*\\([[:space:]]*${name}[[:space:]]*\\)([^;]*);" text);

  reads =
    if !builtins.pathExists "${linuxDir}/stage0.nix" then
      throw "stdenv-bridge: ${where} has no pkgs/stdenv/linux/stage0.nix (the bridge needs a nixpkgs from after PR #479322, nixos-26.05 or newer)"
    else if length binders != 1 then
      throw "stdenv-bridge: ${where}: pkgs/stdenv/linux/default.nix does not bind `import ./stage0.nix` exactly once (found ${toString (length binders)}); the redirection of that import cannot apply"
    else unique (readsOf (head binders));
in
{
  # The attribute names default.nix reads (for tests and for the error below).
  inherit reads;

  # `value` when every read attribute is among `provided`, else one error naming them.
  check = provided: value:
    let missing = filter (a: !elem a provided) reads;
    in
    if missing == [ ] then value
    else throw "stdenv-bridge: ${where}: pkgs/stdenv/linux/default.nix reads stage0.${concatStringsSep ", stage0." missing}, which stdenv-bridge/stage0.nix does not provide";
}
