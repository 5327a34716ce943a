# The derivation of the closure check (closure-check.nix decides what is forbidden). The target's
# .drv is an input as a plain file (unsafeDiscardOutputDependency): the sandbox then holds its
# whole .drv closure, and nothing of the target is built. The tools are the seed set's bash,
# coreutils and grep.
{ system, forbiddenDrvs, forbiddenNames, bash, coreutils, gnugrep }:
name: target:
derivation {
  name = "no-nixpkgs-bootstrap-in-${name}";
  inherit system;
  builder = "${bash}/bin/bash";
  args = [ ./closure-check.sh ];
  PATH = "${coreutils}/bin:${gnugrep}/bin";
  target = target.name;
  targetDrv = builtins.unsafeDiscardOutputDependency target.drvPath;
  # as text without context: naming them must not make them inputs of the check
  forbiddenDrvs = builtins.unsafeDiscardStringContext (builtins.concatStringsSep "\n" forbiddenDrvs);
  forbiddenNames = builtins.concatStringsSep "\n" forbiddenNames;
}
