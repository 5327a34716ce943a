# Loads a generated steps/ directory: metadata, the distfiles (each once, by file name) and the
# ordered steps with their distfiles resolved. The one place that knows steps/'s file layout.
{ steps, fetchDistfile }:
let
  distfiles = import (steps + "/distfiles.nix") { inherit fetchDistfile; };
in
{
  meta = import (steps + "/meta.nix");
  inherit distfiles;
  chainSteps = map (f: import f { inherit distfiles; }) (import (steps + "/default.nix"));
  # Hand-written runner data beside the generated steps (preserved by `generate`): which steps
  # need what from the runner, with reasons. See nix/runner.nix (stepBehaviour).
  stepData =
    let f = steps + "/overrides/runner/steps.json"; in
    if builtins.pathExists f then builtins.fromJSON (builtins.readFile f) else { entries = [ ]; };
}
