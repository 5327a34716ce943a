{
  description = "The live-bootstrap chain, from the 181-byte hex0 seed, as cached Nix derivations";

  inputs = {
    # live-bootstrap with its submodules (stage0-posix and everything below it). Code, not a
    # flake. steps/ is generated from this revision: bump with `python -m orchestrator update`.
    live-bootstrap = {
      url = "git+https://github.com/fosslinux/live-bootstrap?submodules=1&rev=984b832224ed9ea701c38e70cf703c6a2aa33243";
      flake = false;
    };
  };

  outputs = { self, live-bootstrap }:
    let
      # The chain itself never needs nixpkgs: everything below is built from the seed.
      chain = system: import ./nix {
        inherit live-bootstrap system;
        steps = ./steps;
      };
      forSystems = f: { x86_64-linux = f "x86_64-linux"; i686-linux = f "i686-linux"; };
    in
    {
      lib = { inherit chain; };

      packages = forSystems (system: (chain system).packages);

      checks = forSystems (system: (chain system).checks);

      hydraJobs = (chain "x86_64-linux").hydraJobs;
    };
}
