# The index of the hand-written Nix library: the one place that decides which part feeds which.
#
# A closed scope: it receives the live-bootstrap tree, the generated steps/ and a system, and
# nothing else -- no nixpkgs, no <nixpkgs>, no host tools. Every builder below is the hex0 seed or
# something built from it.
{ live-bootstrap, steps, system }:
let
  lib = import ./lib.nix;
  fetchers = import ./fetchers.nix { };

  inherit (import ./steps.nix { inherit steps; inherit (fetchers) fetchDistfile; })
    meta distfiles chainSteps stepData;

  freshness = import ./freshness.nix { inherit lib live-bootstrap meta steps; };

  # stage0-posix from the hex0 seed; x86 runs on both systems, AMD64 only on x86_64-linux.
  stage0 = import ./stage0.nix { inherit live-bootstrap steps; };
  # Diverse double-compiling (nix/ddc.nix): the x86 chain's commands run by the AMD64 chain's
  # programs, compared with the x86 chain's files; it runs AMD64 programs, so x86_64-linux only.
  ddc = import ./ddc.nix { inherit stage0 steps; };
  stage0Packages = { stage0 = stage0.x86.package; }
    // (if system == "x86_64-linux" then {
    stage0-amd64 = stage0.amd64.package;
    ddc-stage0-verdict = ddc.verdict;
  } else { });
  stage0Checks = {
    stage0-self-reproduction = stage0.x86.checks.self-reproduction;
    stage0-answers = stage0.x86.checks.answers;
  } // (if system == "x86_64-linux" then {
    stage0-amd64-self-reproduction = stage0.amd64.checks.self-reproduction;
    stage0-amd64-answers = stage0.amd64.checks.answers;
    ddc-stage0 = ddc.check;
  } else { });

  # The runner (nix/runner.nix, nix/seed.nix, nix/oracle.nix): every step of steps/ as its own
  # sandboxed derivation over the seed stage, .#live-bootstrap, the script-generator oracle.
  runner = (import ./runner.nix { inherit lib; }).outputs {
    inherit meta chainSteps stepData;
    live-bootstrap = import ./tree.nix { inherit live-bootstrap; };
    stage0 = stage0.x86;
    profilesDir = ../orchestrator/profiles;
  };

  # The stdenv bridge (nix/bridge.nix): the final system as the seed of a nixpkgs x86_64-linux
  # stdenv, from stdenv-bridge/members.json. Its glibc and compilers target x86_64, so it is an
  # x86_64-linux output only; still built by the i686 chain and its runner, still no nixpkgs.
  bridge = (import ./bridge.nix { inherit lib; runnerLib = import ./runner.nix { inherit lib; }; }) {
    data = builtins.fromJSON (builtins.readFile ../stdenv-bridge/members.json);
    scripts = ../stdenv-bridge;
    inherit (fetchers) fetchDistfile;
    inherit (runner.final) system runner;
    below = runner.final.layers;
    chainByName = runner.final.byName;
    inherit chainSteps;
  };
  bridgeOutputs = attr: if system == "x86_64-linux" then bridge.${attr} else { };
in
{
  inherit lib meta distfiles chainSteps stage0;
  # the bridge's steps and members by name (nix/bridge.nix), for the nixpkgs side (x86_64-linux)
  bridge = if system == "x86_64-linux" then bridge else null;

  packages = {
  } // stage0Packages // runner.packages // bridgeOutputs "packages";

  checks = {
    steps-fresh = freshness;
  } // stage0Checks // runner.checks;

  hydraJobs = {
  } // runner.hydraJobs // (if system == "x86_64-linux" then { bridge = bridge.hydraJobs; } else { });
}
