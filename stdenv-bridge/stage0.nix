# Our stage0 for nixpkgs' pkgs/stdenv/linux/default.nix: the attribute set that file reads from
# its own ./stage0.nix, built from the chain's seed set (part 1) instead of nixpkgs'
# minimal-bootstrap. Written against nixpkgs' stage0.nix at 0530d598e110 (its
# minimal-bootstrap branch) and the interface notes in docs/bridge-nixpkgs.md.
#
#   bridge:  part 1's members by name (seed-set.json lists them), plain derivations
#   nixpkgs: the nixpkgs source tree (for build-support/bintools-wrapper, as upstream uses)
#
# The result is the function default.nix calls. It takes `...`: the argument set changed between
# revisions (bootstrapFiles was dropped) and we need none of the others but lib.
#
# No nixpkgs lib is used for our own logic (only handed on to bintools-wrapper), so the contract
# test evaluates this file with the real Nix 2.8 and no nixpkgs at all.
{ bridge, nixpkgs }:
{ localSystem, lib ? null, ... }:
let
  data = builtins.fromJSON (builtins.readFile ./seed-set.json);

  # Every member carries the marker nixpkgs' stages assert on
  # (`pkg.passthru.isFromBootstrapFiles or pkg.passthru.isFromMinBootstrap or false`), on the
  # derivation and on each of its outputs, as lib.extendDerivation would put it.
  mark = drv:
    let
      passthru = (drv.passthru or { }) // { isFromMinBootstrap = true; };
      extra = { inherit passthru; isFromMinBootstrap = true; };
      outputs = builtins.listToAttrs (map
        (o: { name = o; value = (drv.${o} or drv) // extra // outputs; })
        (drv.outputs or [ "out" ]));
    in
    drv // extra // outputs;

  member = name:
    if bridge ? ${name} then mark (bridge.${name} // (data.attrs.${name} or { }))
    else throw ("stdenv-bridge: part 1's seed set has no member '${name}' (it has: "
      + builtins.concatStringsSep " " (builtins.attrNames bridge) + ")");

  seed = builtins.listToAttrs (map (n: { name = n; value = member n; }) data.members);

  versionOf = drv: drv.version or (builtins.parseDrvName drv.name).version;

  # nixpkgs re-links stage-1 tools against its own libraries: a seed member newer than its
  # nixpkgs counterpart can break them. Warn (as upstream's checkBootstrapPackages does) and
  # return whether everything is in order. Compared as upstream compares (lib.versionAtLeast,
  # i.e. builtins.compareVersions) after dropping trailing ".0" components, so that one release
  # spelled two ways ("2.46.0", "2.46") is not "newer"; a member part 1 documents as an exception
  # (members.json: nixpkgs.exception, a version nixpkgs' own seed ships against the same top
  # level) passes up to that version.
  versions = import ./versions.nix;
  checkOne = toplevelPkgs: name:
    let
      top = toplevelPkgs.${data.toplevel.${name}} or null;
      mine = versionOf seed.${name};
      exception = seed.${name}.nixpkgsCounterpart.exception or null;
      ok = top == null || versions.atLeast (versionOf top) mine
        || (exception != null && versions.atLeast exception.version mine);
    in
    if ok then true
    else builtins.trace
      "warning: stdenv stage0: seed ${name} ${versionOf seed.${name}} (from live-bootstrap) is newer than pkgs.${data.toplevel.${name}} ${versionOf top}"
      false;
in
if localSystem.libc or "glibc" != "glibc" then
  throw "stdenv-bridge/stage0.nix: the seed set has a glibc, not ${localSystem.libc}; other libcs use nixpkgs' own stages"
else {
  isMinimalBootstrap = true;
  # What upstream's other branch (prebuilt bootstrapFiles) returns instead of minimal-bootstrap.
  # default.nix reads it only when isMinimalBootstrap is false, but the contract check sees the
  # read: present by name, an error if ever forced.
  bootstrapTools = throw "stdenv-bridge/stage0.nix: the seed comes from live-bootstrap, there are no bootstrapTools (isMinimalBootstrap = true)";
  # Where upstream exposes nixpkgs' minimal-bootstrap scope, ours is the seed set.
  minimal-bootstrap = seed // { recurseForDerivations = true; };

  # "${stage0.bash}/bin/bash" is the builder and shell of every bootstrap stage.
  bash = seed.bash;

  initialPath = map (n: seed.${n}) data.initialPath;

  dummyStdenv = {
    name = "bootstrap-stage0";
    overrides = self: super: {
      # Later stages wrap gcc with this stage's stdenv under this name.
      ccWrapperStdenv = self.stdenv;
      # glibc's include dir must not share a prefix with gcc's (gcc would search glibc's headers
      # before its own): a separate derivation that links the seed glibc's lib and include.
      ${localSystem.libc} = self.stdenv.mkDerivation {
        pname = "bootstrap-stage0-${localSystem.libc}";
        version = "live-bootstrap";
        strictDeps = true;
        __structuredAttrs = true;
        buildCommand = ''
          mkdir -p $out
          ln -s ${seed.glibc}/lib $out/lib
          ln -s ${seed.glibc}/include $out/include
        '';
        passthru.isFromBootstrapFiles = true;
      };
      gcc-unwrapped = seed.gcc;
      binutils = import "${nixpkgs}/pkgs/build-support/bintools-wrapper" {
        name = "bootstrap-stage0-binutils-wrapper";
        nativeTools = false;
        nativeLibc = false;
        expand-response-params = "";
        inherit lib;
        inherit (self) stdenvNoCC coreutils gnugrep libc;
        bintools = seed.binutils;
        runtimeShell = "${seed.bash}/bin/bash";
      };
      coreutils = seed.coreutils;
      gnugrep = seed.gnugrep;
    };
  };

  checkBootstrapPackages = toplevelPkgs:
    builtins.foldl' (acc: n: checkOne toplevelPkgs n && acc) true data.members;

  # The final stdenv's disallowedRequisites: no seed member may survive into it.
  disallowedInFinalStdenv = map (n: seed.${n}.out) data.members;
}
