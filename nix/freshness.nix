# Is steps/ generated from this live-bootstrap input? Pure evaluation, no Python.
#
# - steps/meta.nix records the sha256 of every upstream file the chain was generated from;
# - steps/stage0/meta.json records the sha256 of every stage0-posix file the stage0 translation
#   read (its kaem scripts, the *.answers lists) and the sha256 of each steps/stage0/<arch>.json.
# A mismatch means someone moved the input without regenerating, or edited a generated file.
# (The stage0-posix commit in the record is checked by `generate`: the input has no git data.)
# The check derivation itself is built by the hex0 seed (an empty hex0 program assembles to an
# empty file), so even this check needs no host binary.
{ lib, live-bootstrap, meta, steps }:
let
  path = p: "${live-bootstrap}/${p}";
  differs = p: sha256: !(builtins.pathExists (path p)) || builtins.hashFile "sha256" (path p) != sha256;
  staleIn = inputs: builtins.filter (p: differs p inputs.${p}) (builtins.attrNames inputs);

  stale = staleIn meta.inputs;

  stage0Dir = steps + "/stage0";
  recordFile = stage0Dir + "/meta.json";
  record =
    if builtins.pathExists recordFile then builtins.fromJSON (builtins.readFile recordFile) else null;
  stage0Names = builtins.filter (n: n != "meta.json")
    (builtins.attrNames (if builtins.pathExists stage0Dir then builtins.readDir stage0Dir else { }));
  stage0Problems =
    if record == null then
      [ "steps/stage0/meta.json is missing: nothing says what steps/stage0 was generated from" ]
    else
      map (n: "steps/stage0/${n} is not in steps/stage0/meta.json")
        (builtins.filter (n: !(record.files ? ${n})) stage0Names)
      ++ map (n: "steps/stage0/${n} does not have the sha256 steps/stage0/meta.json records")
        (builtins.filter
          (n: !(builtins.pathExists (stage0Dir + "/${n}"))
            || builtins.hashFile "sha256" (stage0Dir + "/${n}") != record.files.${n})
          (builtins.attrNames record.files))
      ++ lib.optional (staleIn record.inputs != [ ])
        "stage0-posix files differ in the live-bootstrap input: ${builtins.concatStringsSep ", " (staleIn record.inputs)}";

  problems =
    lib.optional (stale != [ ])
      "these upstream files differ in the live-bootstrap input: ${builtins.concatStringsSep ", " stale}"
    ++ stage0Problems;
in
if problems != [ ] then
  throw ''
    steps/ is stale: it was generated from live-bootstrap ${toString meta.commit}, and
      ${builtins.concatStringsSep "\n  " problems}
    Run `python -m orchestrator generate` and commit steps/.''
else
  derivation {
    name = "steps-fresh";
    system = "i686-linux";
    builder = path "seed/stage0-posix/bootstrap-seeds/POSIX/x86/hex0-seed";
    args = [ (builtins.toFile "empty.hex0" "") (builtins.placeholder "out") ];
  }
