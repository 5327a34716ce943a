# The chain: every step of steps/ as its own ns-run derivation over the outputs of all earlier
# steps (see nix/runner.nix for the interface of a step's output).
{ lib, scripts, derivations, behaviour }:
let
  inherit (builtins) filter genList length elemAt toString;
  inherit (scripts) directiveText kaemHeader bashHeader trailer;
  inherit (derivations) mkRun asLayer mkCheckpoint;
  inherit (behaviour) defaultCopyUp stepBehaviour mkSetuidCheck;

  mod = a: b: a - (a / b) * b;
  unique = xs: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] xs;
  # results.(i) = f i results.(i - 1), results.(-1) = init (lazy: each refers to the one before)
  scan = f: init: n:
    let results = genList (i: f i (if i == 0 then init else elemAt results (i - 1))) n;
    in results;
in
{
  # The chain. `steps`: the step data of steps/*.nix, in order. `below`: layers under the first
  # step (stage0 tree, base, seed). `environ`: path of the NUL-separated environment the first
  # step starts with. `checkpointEvery`: flatten the stack after that many steps (null: never).
  # `stepData`: the parsed steps/overrides/runner/steps.json (see stepBehaviour).
  mkChain =
    { system
    , runner
    , steps
    , below
    , environ
    , config
    , envText
    , kaem ? "/usr/bin/kaem"
    , bash ? "/usr/bin/bash"
    , arch ? "x86"
    , checkpointEvery ? null
    , prefix ? "lb-"
    , setenv ? [ ]
    , stepData ? { entries = [ ]; }
      # early cutoff (nix/cutoff.nix): { s; drv; environ; } -> { layer; environ; ... } for a
      # pinned step: later steps overlay the layer and start with that environment instead of
      # drv's output; null: every step is its own layer
    , cutoff ? null
    }:
    let
      n = length steps;

      behaviour = stepBehaviour { inherit steps; data = stepData; };
      behaviourOf = s: behaviour.${s.attrName} or { copyUp = [ ]; copyUpTrees = [ ]; setuid = false; };
      setuidSteps = filter (s: (behaviourOf s).setuid) steps;
      setuidCheck = mkSetuidCheck {
        inherit system runner;
        name = "${prefix}setuid-check";
        steps = map (s: s.attrName) setuidSteps;
      };
      setuidLines = s:
        if (behaviourOf s).setuid
        then "require setuid\nsetuid-steps ${builtins.concatStringsSep ", " (map (x: x.attrName) setuidSteps)}\n"
        else "";

      labelOf = s:
        if s.directive == "build"
        then "${s.attrName} (build: ${s.name}, pass ${toString s.pass}, step ${toString s.index})"
        else "${s.attrName} (${s.directive}: ${s.name}, step ${toString s.index})";

      scriptOf = s:
        (if s.era == "kaem" then kaemHeader { inherit config envText; } else bashHeader)
        + directiveText s + trailer;

      checksOf = s:
        if s.directive != "build" then ""
        else if s.era == "kaem" && s ? checksums then "checksums /${s.checksums} /steps/${s.name}\n"
        else if s ? package && s.package.sha256 != null then
          "expect ${s.package.sha256} /external/repo/${s.package.file}\n"
        else "";

      distfileLines = s:
        lib.concatMapStrings (d: "distfile ${d.fileName} ${d}\n") (s.distfiles or [ ]);

      copyUpLines = s:
        defaultCopyUp
        + lib.concatMapStrings (p: "copyup ${p}\n") (behaviourOf s).copyUp
        + lib.concatMapStrings (d: "copyuptree ${d}\n") (unique (behaviourOf s).copyUpTrees);

      # The exported environment the step starts with: the one the previous step left, or, for
      # the first step of an upstream CI pass (the model's `environmentReset`), only that (as
      # `env -i bwrap --setenv ...` gives it). Values reach ns-run's spec, one line each.
      environLines = s: prev:
        if !(s ? environmentReset) then "environ ${prev.environ}\n"
        else lib.concatMapStrings
          (name:
            let value = s.environmentReset.${name}; in
            if builtins.match "[A-Za-z_][A-Za-z0-9_]*" name == null || builtins.match "[^\n\r]*" value == null
            then throw "step ${s.attrName}: environmentReset.${name} cannot be passed to ns-run (a name of letters, digits and _, a value of one line)"
            else "setenv ${name}=${value}\n")
          (builtins.attrNames s.environmentReset);

      # results.(i) = { drv; layers (for the next step); environ }
      step = i: prev:
        let
          s = elemAt steps i;
          drv = mkRun {
            inherit system runner;
            name = "${prefix}${s.attrName}";
            label = labelOf s;
            layers = prev.layers;
            files = { stepScript = scriptOf s; };
            spec = environLines s prev + ''
              file step stepScriptPath
              cwd /steps
            ''
            + distfileLines s + copyUpLines s + setuidLines s
            + lib.concatMapStrings (e: "setenv ${e}\n") setenv
            + (if s.era == "kaem"
               then "arg ${kaem}\narg --file\narg /tmp/.runner/step\n"
               else "arg ${bash}\narg /tmp/.runner/step\n")
            + checksOf s
            + ''
              state environ /tmp/.runner/environ
              state env /steps/env
              state bootstrap.cfg /steps/bootstrap.cfg
            '';
            extra = {
              # for people and tools reading the derivation
              lbStep = s.attrName;
              lbDirective = s.directive;
              lbPass = if s ? pass then toString s.pass else "";
              lbIndex = toString s.index;
            } // (if (behaviourOf s).setuid then {
              # built first (no other input): fails at once if the sandbox refuses setuid bits
              inherit setuidCheck;
              lbNeedsSetuid = "1";
            } else { });
          };
          cut = if cutoff != null && (import ../cutoff.nix { inherit lib; }).isPinned s
                then cutoff { inherit s drv; environ = prev.environ; } else null;
          result = if cut == null then drv else cut.layer;
          stacked = prev.layers ++ [ (asLayer result) ];
          checkpoint = checkpointEvery != null && mod (i + 1) checkpointEvery == 0 && i + 1 < n;
          cp = mkCheckpoint {
            inherit system runner;
            name = "${prefix}checkpoint-${toString (i + 1)}";
            layers = stacked;
          };
        in
        {
          inherit drv cut result;
          layers = if checkpoint then [ (asLayer cp) ] else stacked;
          environ = if cut == null then "${drv}/state/environ" else "${cut.environ}";
        };

      results = scan step { layers = below; inherit environ; } n;
      drvs = map (r: r.result) results;
      named = f: builtins.listToAttrs (genList (i: { name = (elemAt steps i).attrName; value = f (elemAt results i); }) n);
    in
    {
      ordered = drvs;
      # what each step contributes to the chain: its output, or for a pinned step its layer
      byName = named (r: r.result);
      # with cutoff: the step derivations themselves, and the pinned steps' { package; tar; layer; }
      stepsByName = named (r: r.drv);
      cutByName = builtins.listToAttrs (builtins.concatLists (genList (i:
        let r = elemAt results i; in
        if r.cut == null then [ ] else [ { name = (elemAt steps i).attrName; value = r.cut // { step = r.drv; }; } ]) n));
      final = if n == 0 then null else lib.last drvs;
      # every layer of the finished system, bottom first (for flattening or inspection)
      layers = if n == 0 then below else (lib.last results).layers;
      # the check the setuid steps depend on (null when no step needs setuid bits)
      setuidCheck = if setuidSteps == [ ] then null else setuidCheck;
      setuidSteps = map (s: s.attrName) setuidSteps;
    };
}
