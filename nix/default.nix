# The index of the hand-written Nix library: the one place that decides which part feeds which.
#
# A closed scope: it receives the live-bootstrap tree, the generated steps/ and a system, and
# nothing else -- no nixpkgs, no <nixpkgs>, no host tools. Every builder below is the hex0 seed or
# something built from it.
{ live-bootstrap, steps, system }:
let
  lib = import ./lib.nix;
  fetchers = import ./fetchers.nix { };

  meta = import (steps + "/meta.nix");
  stepFiles = import (steps + "/default.nix");
  chainSteps = map (f: import f { inherit (fetchers) fetchDistfile; }) stepFiles;

  freshness = import ./freshness.nix { inherit lib live-bootstrap meta; };
in
{
  inherit lib meta chainSteps;

  packages = {
  };

  checks = {
    steps-fresh = freshness;
  };

  hydraJobs = {
  };
}
