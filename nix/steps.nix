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
}
