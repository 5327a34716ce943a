# The seed stage: what live-bootstrap runs between stage0-posix and step 0, as derivations.
#
#   runner   ns-run (nix/runner/ns-run.c) built by stage0's M2-Mesoplanet: the tool every later
#            derivation uses as its builder. Built the way seed.kaem builds script-generator.
#   base     the root filesystem rootfs.py --bwrap lays out before the seed runs: stage0-posix's
#            tree (kept as its own bottom layer, straight from the live-bootstrap input), stage0's
#            tools in /x86/bin, the files of seed/ at /, /steps with bootstrap.cfg, /init (the
#            kaem-optional-seed), empty /external/distfiles, /dev, /proc, /tmp, /sys.
#   seed     after.kaem + seed.kaem run over base in the runner's namespace: stage0 tools copied
#            to /usr/bin, configurator and script-generator compiled with M2-Mesoplanet and
#            checked against seed/*.x86.checksums (by seed.kaem itself), /steps/0.sh ... written
#            by the real script-generator. Only its last line (`kaem --file /steps/0.sh`, the
#            start of the chain) is replaced by the runner's environment dump, so the first step
#            starts with exactly the environment seed.kaem exports (M2LIBC_PATH, PATH=${BINDIR},
#            the mes variables, bootstrap.cfg, steps/env, and kaem.run's variables).
{ lib, runnerLib, live-bootstrap, stage0, cfgText }:
let
  inherit (builtins) readFile readDir attrNames filter match split isString replaceStrings;

  system = stage0.system;
  seedDir = "${live-bootstrap}/seed";
  stage0Tree = "${seedDir}/stage0-posix";

  lines = text: filter isString (split "\n" text);

  escapeRegex = replaceStrings
    [ "\\" "." "*" "+" "?" "(" ")" "[" "]" "{" "}" "|" "^" "$" ]
    [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\(" "\\)" "\\[" "\\]" "\\{" "\\}" "\\|" "\\^" "\\$" ];

  # replace exactly one occurrence of `old`, or stop evaluation saying what changed upstream
  replaceOnce = file: old: new: text:
    let parts = split (escapeRegex old) text;
    in
    if builtins.length parts != 3
    then throw "seed: ${file} no longer contains exactly one '${old}'; the runner's seed stage must be updated"
    else replaceStrings [ old ] [ new ] text;

  runner = derivation {
    name = "lb-ns-run";
    inherit system;
    builder = "${stage0.tools.kaem}";
    args = [ "--verbose" "--strict" "--file" (builtins.toFile "build-ns-run.kaem" ''
      mkdir -p ''${out}/bin
      M2-Mesoplanet --architecture x86 -f ''${src} -o ''${out}/bin/ns-run
    '') ];
    PATH = "${stage0.package}/bin";
    M2LIBC_PATH = "${stage0.package}/M2libc";
    src = ./runner/ns-run.c;
  };

  seedFiles = filter (n: (readDir seedDir).${n} == "regular") (attrNames (readDir seedDir));

  base = runnerLib.mkRun {
    name = "lb-base";
    inherit system runner;
    label = "base (live-bootstrap's root filesystem before the seed runs)";
    layers = [ { tree = stage0Tree; } ];
    files = { bootstrapCfg = cfgText; };
    spec = lib.concatMapStrings (f: "copyin ${seedDir}/${f} /${f}\n") seedFiles + ''
      copyin ${live-bootstrap}/steps /steps
      put /steps/bootstrap.cfg bootstrapCfgPath
      copyin ${stage0.package}/bin /x86/bin
      copyin ${stage0Tree}/bootstrap-seeds/POSIX/x86/kaem-optional-seed /init
      mkdir /external/distfiles
      mkdir /dev
      mkdir /proc
      mkdir /tmp
      mkdir /sys
      no-command
    '';
  };

  # kaem.run's variable assignments: the environment after.kaem inherits from stage0
  kaemRunVars = lib.concatMapStrings (l: l + "\n")
    (filter (l: match "[A-Z_][A-Z0-9_]*=.*" l != null) (lines (readFile "${stage0Tree}/x86/kaem.run")));

  afterKaem = replaceOnce "seed/after.kaem" "kaem --file seed-full.kaem"
    "catm /tmp/.runner/seed-full.kaem /steps/bootstrap.cfg /steps/env /tmp/.runner/seed-body\nkaem --file /tmp/.runner/seed-full.kaem"
    (readFile "${seedDir}/after.kaem");

  seedBody = replaceOnce "seed/seed.kaem" "kaem --file /steps/0.sh" runnerLib.trailer
    (readFile "${seedDir}/seed.kaem");

  layersBelowSeed = [ { tree = stage0Tree; } (runnerLib.asLayer base) ];

  seed = runnerLib.mkRun {
    name = "lb-seed";
    inherit system runner;
    label = "seed (after.kaem + seed.kaem: configurator and script-generator against their pins)";
    layers = layersBelowSeed;
    files = {
      seedScript = kaemRunVars + "cd /\n" + afterKaem;
      seedBody = seedBody;
    };
    spec = runnerLib.defaultCopyUp + ''
      setenv PATH=/usr/bin
      file seed seedScriptPath
      file seed-body seedBodyPath
      cwd /
      arg /x86/bin/kaem
      arg --verbose
      arg --strict
      arg --file
      arg /tmp/.runner/seed
      state environ /tmp/.runner/environ
      state env /steps/env
      state bootstrap.cfg /steps/bootstrap.cfg
    '';
  };
in
{
  inherit runner base seed system;
  # everything under step 0, bottom first
  layers = layersBelowSeed ++ [ (runnerLib.asLayer seed) ];
  environ = "${seed}/state/environ";
}
