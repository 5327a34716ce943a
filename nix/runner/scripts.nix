# What live-bootstrap's seed/script-generator.c emits, from the model's step data: the lines of
# one directive, the head of /steps/N.sh, and the whole of every /steps/N.sh (which the oracle
# compares with what the real script-generator writes).
{ lib }:
let
  inherit (builtins) filter toString;
  unique = xs: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] xs;
in
rec {
  # The lines output_build / output_call_script / uninstall emit for one directive (era = kaem:
  # inside /steps/0.sh; era = bash: inside /steps/N.sh).
  directiveText = s:
    if s.directive == "build" then
      (if s.era == "kaem"
       then "pkg=${s.name}\ncd \${pkg}\nkaem --file pass${toString s.pass}.kaem\ncd ..\n"
       else "build ${s.name} pass${toString s.pass}.sh\n")
    else if s.directive == "improve" then
      (if s.era == "kaem"
       then "kaem --file /steps/improve/${s.name}.sh\n"
       else ". /steps/improve/${s.name}.sh\n")
    else if s.directive == "uninstall" then "uninstall ${s.name}\n"
    else throw "step ${s.attrName}: a '${s.directive}:' directive cannot run as a step (jumps change kernels; the nix profile has none)";

  # start_script(): the head of /steps/N.sh. kaem: set -ex, cd /steps, bootstrap.cfg as written
  # back after the defines, then /steps/env verbatim. bash (INTERACTIVE=False): set -e and sourcing.
  kaemHeader = { config, envText }:
    "set -ex\ncd /steps\n"
    + lib.concatMapStrings (c: "${c.name}=${c.value}\n") config
    + envText;
  bashHeader = "#!/bin/bash\nset -e\ncd /steps\n. ./bootstrap.cfg\n. ./env\n. ./helpers.sh\n";

  # The whole of /steps/N.sh for a profile: directives grouped by bash generation; the step the
  # model marks `opensNextScript` (a build of a bash, the model's one rule for eras) closes its
  # script with the call of the next one.
  expectedScripts = { steps, config, envText }:
    let
      gens = unique (map (s: s.bashGeneration) steps);
      scriptFor = g:
        let
          mine = filter (s: s.bashGeneration == g) steps;
          head = if g == 0 then kaemHeader { inherit config envText; } else bashHeader;
          call = s: if s.opensNextScript or false then "bash /steps/${toString (g + 1)}.sh\n" else "";
        in
        head + lib.concatMapStrings (s: directiveText s + call s) mine;
    in
    map (g: { name = "${toString g}.sh"; text = scriptFor g; }) gens;

  # The last line of every step's script: the exported environment, for the next step.
  trailer = "/tmp/.runner/ns-run dump-env /tmp/.runner/environ\n";
}
