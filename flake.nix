{
  description = "The live-bootstrap chain, from the 181-byte hex0 seed, as cached Nix derivations";

  inputs = {
    # live-bootstrap with its submodules (stage0-posix and everything below it). Code, not a
    # flake. steps/ is generated from this revision: bump with `python -m orchestrator update`.
    live-bootstrap = {
      url = "git+https://github.com/fosslinux/live-bootstrap?submodules=1&rev=984b832224ed9ea701c38e70cf703c6a2aa33243";
      flake = false;
    };
    # For the developer tooling (the CLI as an app, the dev shell, the formatter) and the
    # stdenv bridge (stdenv-bridge/): a release that has pkgs/stdenv/linux/stage0.nix. Evaluating
    # the chain never forces it: Nix fetches inputs lazily. Bump: docs/bridge-nixpkgs.md.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
  };

  outputs = { self, live-bootstrap, nixpkgs }:
    let
      # The chain itself never needs nixpkgs: everything below is built from the seed.
      chain = system: import ./nix {
        inherit live-bootstrap system;
        steps = ./steps;
      };
      forSystems = f: { x86_64-linux = f "x86_64-linux"; i686-linux = f "i686-linux"; };
      tooling = system: import ./nix/tooling.nix {
        pkgs = nixpkgs.legacyPackages.${system};
        src = self;
      };
      # nixpkgs' own stdenv stages on the chain's seed set (x86_64-linux). Every value is behind
      # the Nix-version guard and nothing is forced unless asked for; the revision comes from
      # flake.lock so that naming it in an error needs no fetch.
      bridged = import ./stdenv-bridge {
        inherit nixpkgs;
        rev = (builtins.fromJSON (builtins.readFile ./flake.lock)).nodes.nixpkgs.locked.rev;
        # part 1's set: `.#bridge` carries every member as an attribute (`.#bridge.glibc`)
        bridge = (chain "x86_64-linux").packages.bridge
          or (throw "the chain has no seed set (.#bridge, stdenv-bridge part 1) in this tree");
      };
      bridgedOn = system: attrs: if system == "x86_64-linux" then attrs else { };
    in
    {
      lib = { inherit chain; bridge = { inherit (bridged) policy hydraPartners; }; };

      # `//` only needs the right side's names, so the chain's packages never force nixpkgs.
      packages = forSystems (system:
        (chain system).packages // { orchestrator = (tooling system).orchestrator; }
        // bridgedOn system { inherit (bridged.packages) stdenv hello nixos-iso; });

      # The bridged nixpkgs: `nix build .#legacyPackages.x86_64-linux.<any package>`.
      legacyPackages = { x86_64-linux = bridged.legacyPackages; };

      # The chain's checks need no nixpkgs; lint and typecheck come from the tooling.
      checks = forSystems (system: (chain system).checks // {
        inherit ((tooling system).checks) lint typecheck;
      } // bridgedOn system bridged.checks);

      hydraJobs = (chain "x86_64-linux").hydraJobs // {
        bridged = { inherit (bridged.packages) stdenv hello nixos-iso; };
      };

      # Developer tooling, from nixpkgs (needs Nix >= 2.18 with current nixpkgs).
      apps = forSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.orchestrator}/bin/orchestrator";
        };
      });

      devShells = forSystems (system: {
        default = (tooling system).mkShell;
      });

      formatter = forSystems (system: (tooling system).formatter);
    };
}
