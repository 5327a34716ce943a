# The runner: every surviving manifest entry of steps/ as its own sandboxed derivation.
#
# A step derivation's builder is ns-run (nix/runner/ns-run.c, built by the chain's own
# M2-Mesoplanet right after stage0; the tests pass one built by the host compiler). It stacks the
# outputs of all earlier steps with overlayfs in a nested user + mount namespace, provides /dev,
# /proc, /tmp and a /sys (an empty read-only tmpfs) as live-bootstrap's bwrap mode does, puts the
# step's distfiles in
# /external/distfiles, and runs exactly what live-bootstrap's seed/script-generator.c emits for
# the directive, with the environment the previous step left. See docs/runner.md.
#
# Output of every step (the interface other parts read):
#   $out/tree/         files and directories the step added or changed (the overlay's upper dir)
#   $out/deletions     what it deleted: one record per line, "D /path" (path gone), "O /dir"
#                      (directory replaced: nothing below it from earlier layers shows), "X /path"
#                      (a device/fifo the step created, dropped); paths escape "\n" and "\\"
#   $out/state/environ the exported environment after the step (NUL-separated), which the next
#                      step starts with
#   $out/state/env, $out/state/bootstrap.cfg   /steps/env and /steps/bootstrap.cfg after the step
#
# One file per concern under nix/runner/: scripts.nix (what script-generator emits),
# derivations.nix (an ns-run invocation, layers, checkpoints), behaviour.nix (step-specific
# behaviour as data: steps/overrides/runner/steps.json, the setuid check), chain.nix (the steps
# over each other), outputs.nix (the flake outputs of the real chain).
{ lib }:
let
  scripts = import ./runner/scripts.nix { inherit lib; };
  derivations = import ./runner/derivations.nix { inherit lib; };
  behaviour = import ./runner/behaviour.nix { inherit lib; };
  chain = import ./runner/chain.nix { inherit lib scripts derivations behaviour; };
  self = {
    inherit (scripts) directiveText kaemHeader bashHeader expectedScripts trailer;
    inherit (derivations) mkRun mkCheckpoint asLayer;
    inherit (behaviour) defaultCopyUp stepBehaviour mkSetuidCheck;
    inherit (chain) mkChain;
  };
in
self // {
  inherit ((import ./runner/outputs.nix { inherit lib self; })) outputs;
}
