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
{ lib }:
let
  inherit (builtins) filter genList length elemAt substring toString;

  mod = a: b: a - (a / b) * b;
  unique = xs: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] xs;
  # results.(i) = f i results.(i - 1), results.(-1) = init (lazy: each refers to the one before)
  scan = f: init: n:
    let results = genList (i: f i (if i == 0 then init else elemAt results (i - 1))) n;
    in results;

  # --- what script-generator emits ----------------------------------------------------------

  # The lines seed/script-generator.c's output_build / output_call_script / uninstall emit for
  # one directive (era = kaem: inside /steps/0.sh; era = bash: inside /steps/N.sh).
  directiveText = s:
    if s.directive == "build" then
      (if s.era == "kaem"
       then "pkg=${s.name}\ncd \${pkg}\nkaem --file pass${toString s.pass}.kaem\ncd ..\n"
       else "build ${s.name} pass${toString s.pass}.sh\n")
    else if s.directive == "improve" then
      (if s.era == "kaem"
       then "kaem --file /steps/improve/${s.name}.sh\n"
       else ". /steps/improve/${s.name}.sh\n")
    else if s.directive == "uninstall" then "uninstall ${s.name}\n"
    else throw "step ${s.attrName}: a '${s.directive}:' directive cannot run as a step (jumps change kernels; the nix profile has none)";

  # start_script(): the head of /steps/N.sh. kaem: set -ex, cd /steps, bootstrap.cfg as written
  # back after the defines, then /steps/env verbatim. bash (INTERACTIVE=False): set -e and sourcing.
  kaemHeader = { config, envText }:
    "set -ex\ncd /steps\n"
    + lib.concatMapStrings (c: "${c.name}=${c.value}\n") config
    + envText;
  bashHeader = "#!/bin/bash\nset -e\ncd /steps\n. ./bootstrap.cfg\n. ./env\n. ./helpers.sh\n";

  # The whole of /steps/N.sh for a profile, from the model (the oracle compares it with what the
  # real script-generator writes): directives grouped by bash generation; a build of bash-*
  # closes its script with the call of the next one.
  expectedScripts = { steps, config, envText }:
    let
      gens = unique (map (s: s.bashGeneration) steps);
      scriptFor = g:
        let
          mine = filter (s: s.bashGeneration == g) steps;
          head = if g == 0 then kaemHeader { inherit config envText; } else bashHeader;
          call = s:
            if s.directive == "build" && substring 0 5 s.name == "bash-"
            then "bash /steps/${toString (g + 1)}.sh\n" else "";
        in
        head + lib.concatMapStrings (s: directiveText s + call s) mine;
    in
    map (g: { name = "${toString g}.sh"; text = scriptFor g; }) gens;

  trailer = "/tmp/.runner/ns-run dump-env /tmp/.runner/environ\n";

  # Files of earlier layers that live-bootstrap's own scripts rewrite in place (improve scripts
  # append to env and bootstrap.cfg; script-generator and configurator rewrite /steps/N.sh,
  # bootstrap.cfg and /preseed-jump.kaem). Store files belong to a user the sandbox does not map,
  # so these are copied into the upper layer before the step runs (an unchanged copy is dropped
  # from the output). Other files can be replaced (unlink, rename, O_CREAT) but not opened for
  # writing; a step that needs that gets a "copyUp" entry in steps/overrides/runner/steps.json.
  defaultCopyUp = ''
    copyup /steps/env
    copyup /steps/bootstrap.cfg
    copyupdir /steps .sh
    copyup /preseed-jump.kaem
  '';

  # --- derivations -----------------------------------------------------------------------------

  layerLine = l: "layer ${l.tree} ${if l ? deletions then l.deletions else "-"}\n";

  # One ns-run invocation as a derivation. `layers` bottom first: { tree; deletions?; }.
  mkRun = { name, system, runner, label, layers, spec ? "", files ? { }, extra ? { } }:
    derivation ({
      inherit name system;
      builder = "${runner}/bin/ns-run";
      args = [ "step" ];
      spec = "label ${label}\nself ${runner}/bin/ns-run\n"
        + lib.concatMapStrings layerLine layers + spec;
      passAsFile = [ "spec" ] ++ builtins.attrNames files;
    } // files // extra);

  # An output as a layer.
  asLayer = drv: { tree = "${drv}/tree"; deletions = "${drv}/deletions"; };

  # Flatten layers into one (a checkpoint): the merged view copied out, nothing deleted.
  mkCheckpoint = { name, system, runner, layers }:
    mkRun {
      inherit name system runner layers;
      label = name;
      spec = "flatten 1\n";
    };

  # --- step-specific behaviour, as data ------------------------------------------------------

  # steps/overrides/runner/steps.json (hand-written, preserved by `generate`): which steps need
  # what from the runner, each entry with its reason. An entry names its steps with "steps" (a
  # list of attribute names) or "from"/"through" (a range of the chain, both ends included) and
  # carries any of "copyUp" (paths to make writable in place), "copyUpTrees" (directories whose
  # every file is), "setuid" (the step sets setuid/setgid bits: see the setuid check below).
  # Returns attrName -> { copyUp; copyUpTrees; setuid; } for the steps that have any entry.
  entryKeys = [ "steps" "from" "through" "copyUp" "copyUpTrees" "setuid" "reason" ];
  stepBehaviour = { steps, data, file ? "steps/overrides/runner/steps.json" }:
    let
      entries = data.entries or [ ];
      indexOf = builtins.listToAttrs (lib.imap0 (i: s: { name = s.attrName; value = i; }) steps);
      where = k: e: "${file}: entry ${toString k} (${e.reason or "no reason"})";
      known = k: e: name:
        if indexOf ? ${name} then indexOf.${name}
        else throw "${where k e} names step '${name}', which is not in steps/default.nix (renamed upstream? update the entry)";
      check = k: e:
        let bad = filter (key: !(builtins.elem key entryKeys)) (builtins.attrNames e); in
        if bad != [ ] then throw "${where k e}: unknown key(s) ${builtins.concatStringsSep ", " bad} (known: ${builtins.concatStringsSep ", " entryKeys})"
        else if !(e ? reason) || e.reason == "" then throw "${where k e}: every entry needs a reason"
        else if (e ? from) != (e ? through) then throw "${where k e}: 'from' and 'through' go together"
        else if !(e ? steps) && !(e ? from) then throw "${where k e}: name its steps with 'steps' or 'from'/'through'"
        else if e ? from && known k e e.from > known k e e.through then throw "${where k e}: '${e.from}' comes after '${e.through}'"
        else e;
      checked = lib.imap0 check entries;
      selected = k: e:
        if e ? steps then map (known k e) e.steps
        else genList (j: known k e e.from + j) (known k e e.through - known k e e.from + 1);
      perEntry = lib.imap0 (k: e: map (i: { name = (elemAt steps i).attrName; value = e; }) (selected k e)) checked;
      grouped = builtins.groupBy (x: x.name) (builtins.concatLists perEntry);
      merge = xs: {
        copyUp = builtins.concatMap (x: x.value.copyUp or [ ]) xs;
        copyUpTrees = builtins.concatMap (x: x.value.copyUpTrees or [ ]) xs;
        setuid = builtins.any (x: x.value.setuid or false) xs;
      };
    in
    builtins.mapAttrs (n: merge) grouped;

  # Nix's seccomp filter (`filter-syscalls`, on by default) refuses setuid/setgid chmod. The steps
  # that need the bits depend on this check, which has no other input: Nix can build it with the
  # first steps, so a sandbox that refuses the bits stops the chain at once with one message
  # (naming the setting, the steps and how to set it), not hours later inside that step. Its
  # output is cached like any other: the steps themselves check again before they start.
  mkSetuidCheck = { name, system, runner, steps }:
    derivation {
      inherit name system;
      builder = "${runner}/bin/ns-run";
      args = [ "check-setuid" ];
      setuidSteps = builtins.concatStringsSep ", " steps;
    };

  # The chain. `steps`: the step data of steps/*.nix, in order. `below`: layers under the first
  # step (stage0 tree, base, seed). `environ`: path of the NUL-separated environment the first
  # step starts with. `checkpointEvery`: flatten the stack after that many steps (null: never).
  # `stepData`: the parsed steps/overrides/runner/steps.json (see stepBehaviour); `copyUp`
  # (attrName -> paths) and `copyUpTrees` (step -> directories) add to it.
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
    , copyUp ? { }
    , copyUpTrees ? (s: [ ])
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
        + lib.concatMapStrings (p: "copyup ${p}\n") ((copyUp.${s.attrName} or [ ]) ++ (behaviourOf s).copyUp)
        + lib.concatMapStrings (d: "copyuptree ${d}\n") (unique (copyUpTrees s ++ (behaviourOf s).copyUpTrees));

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
            spec = ''
              environ ${prev.environ}
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
          cut = if cutoff != null && (import ./cutoff.nix { inherit lib; }).isPinned s
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
  # The real chain: flake outputs from the generated steps/ and the stage0 build.
  # Returns { packages; checks; hydraJobs; } to merge into nix/default.nix's.
  outputs = { live-bootstrap, meta, chainSteps, stage0, profilesDir, checkpointEvery ? null
            , stepData ? { entries = [ ]; } }:
    let
      self = { inherit directiveText kaemHeader bashHeader expectedScripts mkRun mkCheckpoint
                 mkChain asLayer trailer defaultCopyUp stepBehaviour mkSetuidCheck; };
      cfgOf = profile: builtins.readFile (profilesDir + "/${profile}.cfg");
      envText = builtins.readFile "${live-bootstrap}/steps/env";
      stage0Tree = "${live-bootstrap}/seed/stage0-posix";
      seedStage = import ./seed.nix {
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
      cutoffLib = import ./cutoff.nix { inherit lib; };
      cutoffUnpack = cutoffLib.mkUnpack { inherit stage0; };
      finished = mkCheckpoint {
        inherit (seedStage) system runner;
        name = "live-bootstrap";
        inherit (chain) layers;
      };
      oracle = import ./oracle.nix { inherit lib seedStage stage0Tree; runnerLib = self; };
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
in
{
  inherit directiveText kaemHeader bashHeader expectedScripts mkRun mkCheckpoint mkChain asLayer trailer defaultCopyUp
    stepBehaviour mkSetuidCheck outputs;
}
