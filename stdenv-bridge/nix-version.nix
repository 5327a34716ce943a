# The Nix the bridged outputs need: nixpkgs' own minimum, checked before anything of nixpkgs is
# evaluated, so an old Nix gets one line naming both versions instead of a syntax error deep in
# nixpkgs. The chain's own outputs never pass through here (they need no nixpkgs).
#
# Two checks, in order:
#  1. `pin.nix_required` (nixpkgs-pin.json): known before the nixpkgs input is fetched, so an old
#     Nix fails at once, even offline;
#  2. the fetched tree's own declaration: lib/minfeatures.nix (nixpkgs since Aug 2025: features
#     with conditions, evaluable by old Nix on purpose) or, in older trees, lib/minver.nix (a
#     version string). This catches a bump that raised the minimum without updating the pin.
{ pin, rev, nixVersion ? builtins.nixVersion }:
let
  inherit (builtins) compareVersions pathExists filter head concatStringsSep;

  tooOld = required: compareVersions nixVersion required < 0;
  fail = required: why:
    throw "this output needs Nix >= ${required} (${why}); this is Nix ${nixVersion}";

  fromTree = nixpkgs:
    let
      minfeatures = "${nixpkgs}/lib/minfeatures.nix";
      minver = "${nixpkgs}/lib/minver.nix";
    in
    if pathExists minfeatures then
      let
        missing = (import minfeatures).missing or [ ];
        # "`builtins.nixVersion` reports at least 2.18" -> "2.18"
        versions = filter (v: v != null) (map
          (f: let m = builtins.match ".*at least ([0-9][0-9.]*).*" (f.description or ""); in
            if m == null then null else head m)
          ((import minfeatures).all or [ ]));
        required = if versions == [ ] then pin.nix_required else head versions;
      in
      if missing == [ ] then null
      else {
        inherit required;
        why = "nixpkgs ${rev}, lib/minfeatures.nix: missing "
          + concatStringsSep "; " (map (f: f.description or "?") missing);
      }
    else if pathExists minver then
      let required = import minver; in
      if tooOld required then { inherit required; why = "nixpkgs ${rev}, lib/minver.nix"; } else null
    else null;
in
{
  # whether this Nix meets the pin's minimum (no fetch)
  newEnough = !(tooOld pin.nix_required);

  # `value`, once this Nix is new enough for the pinned nixpkgs (before fetching it) ...
  beforeFetch = value:
    if tooOld pin.nix_required
    then fail pin.nix_required "nixpkgs ${rev} on ${pin.branch}, stdenv-bridge/nixpkgs-pin.json"
    else value;

  # ... and for the fetched tree itself.
  forTree = nixpkgs: value:
    let r = fromTree nixpkgs; in
    if r == null then value else fail r.required r.why;

  # Both checks for a bridged *output* (`nix build .#NAME`): `value` when this Nix is new enough,
  # else a value shaped like a derivation whose drvPath and outPath carry the message. Why not a
  # plain throw: Nix's evaluation cache records a failed attribute, and where it reaches it
  # through a parent whose names it already cached, it answers from the record ("flake output
  # attribute ... is not a derivation") without the message. Here the output itself evaluates
  # (an attribute set with `type` and `name`), and only drvPath/outPath fail; Nix re-evaluates
  # a failed drvPath every time it builds (eval-cache.cc: getAttr with forceErrors), so the
  # message is shown the second and the tenth time too.
  output = name: nixpkgs: value:
    let
      speaking = required: why:
        let e = fail required why; in {
          type = "derivation";
          name = "${name}-needs-nix-${required}";
          outputName = "out";
          outputs = [ "out" ];
          drvPath = e;
          outPath = e;
          meta.description = "needs Nix >= ${required}; this is Nix ${nixVersion}";
        };
      r = fromTree nixpkgs;
    in
    if tooOld pin.nix_required then
      speaking pin.nix_required "nixpkgs ${rev} on ${pin.branch}, stdenv-bridge/nixpkgs-pin.json"
    else if r != null then speaking r.required r.why
    else value;
}
