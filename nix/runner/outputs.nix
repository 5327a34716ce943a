# The real chain as flake outputs, from the generated steps/ and the stage0 build: the step
# derivations, the seed stage, the finished system, the oracle checks and Hydra's jobs.
{ lib, self }:
let
  inherit (self) mkChain mkCheckpoint expectedScripts asLayer;
in
{
  # The real chain: flake outputs from the generated steps/ and the stage0 build.
  # Returns { packages; checks; hydraJobs; } to merge into nix/default.nix's.
  outputs = { live-bootstrap, meta, chainSteps, stage0, profilesDir, checkpointEvery ? null
            , stepData ? { entries = [ ]; } }:
    let
      cfgOf = profile: builtins.readFile (profilesDir + "/${profile}.cfg");
      envText = builtins.readFile "${live-bootstrap}/steps/env";
      stage0Tree = "${live-bootstrap}/seed/stage0-posix";
      seedStage = import ../seed.nix {
        inherit lib live-bootstrap stage0;
        runnerLib = self;
        cfgText = cfgOf meta.profile;
      };
      chain = mkChain {
        inherit (seedStage) system runner environ;
        inherit checkpointEvery;
        steps = chainSteps;
        below = seedStage.layers;
        inherit (meta) config;
        inherit envText stepData;
        cutoff = cutoffLib.mkLayer {
          inherit (seedStage) system;
          unpack = cutoffUnpack;
          decompress = cutoffLib.unbz2 { inherit stage0; };
        };
      };
      # early cutoff: pinned packages' layers (nix/cutoff.nix), tools from stage0-posix alone
      cutoffLib = import ../cutoff.nix { inherit lib; };
      cutoffUnpack = cutoffLib.mkUnpack { inherit stage0; };
      finished = mkCheckpoint {
        inherit (seedStage) system runner;
        name = "live-bootstrap";
        inherit (chain) layers;
      };
      oracle = import ../oracle.nix { inherit lib seedStage stage0Tree; runnerLib = self; };
      expectedNix =
        map (f: { path = "steps/${f.name}"; inherit (f) text; })
          (expectedScripts { steps = chainSteps; inherit (meta) config; inherit envText; })
        ++ [
          { path = "steps/bootstrap.cfg"; text = lib.concatMapStrings (c: "${c.name}=${c.value}\n") meta.config; }
        ];
      hydraName = builtins.replaceStrings [ "." ] [ "_" ];
    in
    {
      packages = chain.byName // {
        live-bootstrap = finished;
        lb-runner = seedStage.runner;
        lb-base = seedStage.base;
        lb-seed = seedStage.seed;
        lb-unpack = cutoffUnpack;
      } // (if chain.setuidCheck == null then { } else { lb-setuid-check = chain.setuidCheck; });
      checks = {
        oracle-nix = oracle { profile = "nix"; cfgText = cfgOf "nix"; expected = expectedNix; };
        oracle-bwrap-ci = oracle { profile = "bwrap-ci"; cfgText = cfgOf "bwrap-ci"; };
      }
      # early cutoff: cutoff-<attrName>, a pinned step's layer against the step's own output
      // builtins.listToAttrs (map (a: { name = "cutoff-${a}"; value = chain.cutByName.${a}.check; })
        (builtins.attrNames chain.cutByName));
      # Hydra job names cannot hold dots: mes-0.27.1-pass1 is chain.mes-0_27_1-pass1
      hydraJobs = {
        live-bootstrap = finished;
        seed = seedStage.seed;
        runner = seedStage.runner;
        chain = builtins.listToAttrs (map (s: { name = hydraName s.attrName; value = chain.byName.${s.attrName}; }) chainSteps);
      };
      # what runs on top of the finished system (nix/bridge.nix): its runner, and the flattened
      # system as the one layer below
      final = {
        inherit (seedStage) system runner;
        inherit (chain) byName;
        layers = [ (asLayer finished) ];
      };
    };
}
