# Early cutoff (issue 20): a step whose package live-bootstrap pins in steps/SHA256SUMS.pkgs is
# overlaid by later steps as a layer made from the package alone, so an unchanged pin keeps the
# layer's store path whatever changed upstream before the step. See docs/runner.md, "Early
# cutoff: what it trusts".
#
# For such a step (attrName, package { file; sha256; }) and its ordinary step derivation `drv`:
#   package  fixed-output derivation, outputHash = the pin (flat sha256): a copy of the tarball
#            the step left at /external/repo/<file>. Its path depends only on the file name and
#            the pin; Nix checks the bytes against the pin when it builds or substitutes it.
#   tar      the package decompressed (stage0-posix's unbz2 in the chain)
#   layer    what helpers.sh's src_apply leaves: the tar extracted with its modes, the tarball at
#            /external/repo/<file>, no deletions (lb-unpack, nix/runner/unpack.c). Its inputs
#            are `package` (a fixed path), `tar`, lb-unpack and unbz2, all built from
#            stage0-posix alone: when the layer exists (built or substituted) Nix never needs
#            `drv`, so the step is not built again.
{ lib }:
let
  # "musl-1.1.24_0.tar.bz2" -> "musl-1.1.24_0" (every SHA256SUMS.pkgs entry ends so)
  stem = file:
    let n = builtins.stringLength file; in
    if n > 8 && builtins.substring (n - 8) 8 file == ".tar.bz2" then builtins.substring 0 (n - 8) file
    else throw "cutoff: package file '${file}' does not end in .tar.bz2 (helpers.sh's src_pkg makes only those)";
in
rec {
  # lb-unpack from stage0-posix alone, the way nix/seed.nix builds ns-run.
  mkUnpack = { stage0 }:
    derivation {
      name = "lb-unpack";
      inherit (stage0) system;
      builder = "${stage0.tools.kaem}";
      args = [ "--verbose" "--strict" "--file" (builtins.toFile "build-lb-unpack.kaem" ''
        mkdir -p ''${out}/bin
        M2-Mesoplanet --architecture x86 -f ''${src} -o ''${out}/bin/lb-unpack
      '') ];
      PATH = "${stage0.package}/bin";
      M2LIBC_PATH = "${stage0.package}/M2libc";
      src = ./runner/unpack.c;
    };

  # stage0-posix's unbz2 as the decompressor (the chain's): { name; package; } -> derivation
  unbz2 = { stage0 }: { name, package }:
    derivation {
      inherit name;
      inherit (stage0) system;
      builder = "${stage0.tools.unbz2}";
      args = [ "--file" "${package}" "--output" (builtins.placeholder "out") ];
    };

  # { s; drv; environ; } -> { package; tar; layer; environ; check; } for a pinned step (`environ`:
  # the environment it starts with). `unpack`: a path with bin/lb-unpack; `decompress`: as unbz2.
  mkLayer = { system, unpack, decompress }: { s, drv, environ }:
    let
      file = s.package.file;
      lbUnpack = "${unpack}/bin/lb-unpack";
      package = derivation {
        name = file;
        inherit system;
        builder = lbUnpack;
        args = [ "copy" "${drv}/tree/external/repo/${file}" (builtins.placeholder "out") ];
        outputHashMode = "flat";
        outputHashAlgo = "sha256";
        outputHash = s.package.sha256;
      };
      tar = decompress { name = "${stem file}.tar"; inherit package; };
      layer = derivation {
        # named by the package file, not the step: nothing but the pin and the tools decides it
        name = "lb-layer-${stem file}";
        inherit system;
        builder = lbUnpack;
        args = [ "layer" "${tar}" "${package}" file (builtins.placeholder "out") ];
      };
      # what the next step starts with: the environment before the step, with build()'s
      # pkg=<name> (pkg is exported since the kaem era); `check` compares it with the step's own
      after = derivation {
        name = "lb-environ-${stem file}";
        inherit system;
        builder = lbUnpack;
        args = [ "environ" environ s.name (builtins.placeholder "out") ];
      };
    in
    {
      inherit package tar layer;
      environ = after;
      # the layer == the step's captured output (tree, no deletions, environment): it builds
      # the step itself, so it is a check, never an input of the chain
      check = derivation {
        name = "lb-cutoff-check-${s.attrName}";
        inherit system;
        builder = lbUnpack;
        args = [ "check" "${drv}" "${layer}" "${after}" (builtins.placeholder "out") ];
      };
    };

  # Is this step's layer made from its package? bash-era builds with a pin in SHA256SUMS.pkgs.
  isPinned = s:
    s.directive == "build" && s.era == "bash" && s ? package && s.package.sha256 != null;
}
