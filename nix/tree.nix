# What the runner may see of the live-bootstrap input: all of it except the binary seeds the
# chain does not run. rootfs.py copies every seed into the root filesystem although only the x86
# hex0 seed and kaem-optional-seed are ever executed; leaving the others out keeps the closure's
# binary inputs at exactly those two (`orchestrator audit live-bootstrap` checks it).
{ live-bootstrap }:
let
  inherit (import ./lib.nix) relativeTo hasPrefix;
  root = "${live-bootstrap}";
  seeds = "seed/stage0-posix/bootstrap-seeds";
  keep = [
    seeds
    "${seeds}/POSIX"
    "${seeds}/POSIX/x86"
    "${seeds}/POSIX/x86/hex0-seed"
    "${seeds}/POSIX/x86/kaem-optional-seed"
  ];
  # relative to the root (Nix hands the filter physical paths: a chroot store prefixes them)
  rel = relativeTo root;
in
builtins.path {
  path = root;
  name = "live-bootstrap-source";
  filter = p: _: let r = rel p; in !(hasPrefix "${seeds}/" r) || builtins.elem r keep;
}
