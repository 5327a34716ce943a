# Version comparison as it matters for the seed: builtins.compareVersions (what nixpkgs'
# lib.versionAtLeast and its own checkBootstrapPackages use) on versions with trailing ".0"
# components dropped, so that one release spelled two ways ("2.46.0" by its tarball, "2.46" by
# nixpkgs' binutils) compares equal instead of "newer". Used by nix/bridge.nix (members.json's
# refusal) and stage0.nix (checkBootstrapPackages); orchestrator/bridge/members.py does the same.
rec {
  normalise = v:
    let m = builtins.match "(.*[0-9])\\.0+" v;
    in if m == null then v else normalise (builtins.head m);

  # whether `a` is at least `b`
  atLeast = a: b: builtins.compareVersions (normalise a) (normalise b) >= 0;
}
