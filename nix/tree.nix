# What the runner may see of the live-bootstrap input: all of it except the binary seeds the
# chain does not run. rootfs.py copies every seed into the root filesystem although only the x86
# hex0 seed and kaem-optional-seed are ever executed; leaving the others out keeps the closure's
# binary inputs at exactly those two (`orchestrator audit live-bootstrap` checks it).
{ live-bootstrap }:
let
  root = "${live-bootstrap}";
  seeds = "${root}/seed/stage0-posix/bootstrap-seeds";
  keep = [
    seeds
    "${seeds}/POSIX"
    "${seeds}/POSIX/x86"
    "${seeds}/POSIX/x86/hex0-seed"
    "${seeds}/POSIX/x86/kaem-optional-seed"
  ];
  underSeeds = p: builtins.substring 0 (builtins.stringLength seeds + 1) p == seeds + "/";
in
builtins.path {
  path = root;
  name = "live-bootstrap-source";
  filter = p: _: !(underSeeds p) || builtins.elem p keep;
}
