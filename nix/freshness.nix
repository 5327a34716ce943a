# Is steps/ generated from this live-bootstrap input? meta.nix records the sha256 of every
# upstream file generation read; a mismatch means someone moved the input without regenerating.
# Pure evaluation, no Python: the check derivation itself is built by the hex0 seed (an empty
# hex0 program assembles to an empty file), so even this check needs no host binary.
{ lib, live-bootstrap, meta }:
let
  path = p: "${live-bootstrap}/${p}";
  stale = builtins.filter
    (p: !(builtins.pathExists (path p)) || builtins.hashFile "sha256" (path p) != meta.inputs.${p})
    (builtins.attrNames meta.inputs);
in
if stale != [ ] then
  throw ''
    steps/ is stale: it was generated from live-bootstrap ${toString meta.commit}, and these
    upstream files differ in the live-bootstrap input: ${builtins.concatStringsSep ", " stale}.
    Run `python -m orchestrator generate` and commit steps/.''
else
  derivation {
    name = "steps-fresh";
    system = "i686-linux";
    builder = path "seed/stage0-posix/bootstrap-seeds/POSIX/x86/hex0-seed";
    args = [ (builtins.toFile "empty.hex0" "") (builtins.placeholder "out") ];
  }
