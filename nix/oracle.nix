# The script-generator oracle (issue 2 part 3): live-bootstrap's own seed/script-generator.c,
# compiled by the seed stage exactly as seed.kaem compiles it (and checked there against
# seed/script-generator.x86.checksums), run on /steps/manifest with a profile's bootstrap.cfg.
#
# Output: tree/steps/<N>.sh, tree/steps/bootstrap.cfg, tree/preseed-jump.kaem as the real
# generator wrote them (plus tree/oracle-expected/ with our model's text, when given).
#
# With `expected` (the model's rendering of the same files, from steps/), the derivation itself
# compares: ns-run checks every file's sha256 against the model's and fails naming file, expected
# and actual hash. That comparison is done by the chain's own tools (script-generator built by
# M2-Mesoplanet, ns-run built by M2-Mesoplanet). tests/test_runner_oracle.py also reads the
# output of both profiles and compares the step sequence with `orchestrator plan --profile`.
{ lib, runnerLib, seedStage, stage0Tree }:
{ profile, cfgText, expected ? null }:
let
  files = if expected == null then [ ] else expected;
  fileAttr = i: "expected${toString i}";
  indexed = lib.imap0 (i: f: f // { attr = fileAttr i; }) files;
in
runnerLib.mkRun {
  name = "lb-oracle-${profile}";
  inherit (seedStage) system runner;
  label = "script-generator oracle (profile ${profile})";
  layers = [ { tree = stage0Tree; } (runnerLib.asLayer seedStage.base) ];
  files = { bootstrapCfg = cfgText; }
    // builtins.listToAttrs (map (f: { name = f.attr; value = f.text; }) indexed);
  spec = ''
    setenv PATH=/usr/bin
    put /steps/bootstrap.cfg bootstrapCfgPath
    copyin ${seedStage.seed}/tree/script-generator /script-generator
    cwd /
    arg /script-generator
    arg /steps/manifest
  ''
  + lib.concatMapStrings (f: "put /oracle-expected/${f.path} ${f.attr}Path\n") indexed
  + lib.concatMapStrings (f: "expect ${builtins.hashString "sha256" f.text} /${f.path}\n") indexed;
}
