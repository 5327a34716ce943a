# The runner: every surviving manifest entry of steps/ as its own sandboxed derivation.
#
# A step derivation's builder is ns-run (nix/runner/ns-run.c, built by the chain's own
# M2-Mesoplanet right after stage0; the tests pass one built by the host compiler). It stacks the
# outputs of all earlier steps with overlayfs in a nested user + mount namespace, provides /dev,
# /proc and /tmp as live-bootstrap's bwrap mode does, puts the step's distfiles in
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
  # writing; a step that needs that gets `copyUp.<attrName> = [ paths ]` in mkChain.
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

  # The chain. `steps`: the step data of steps/*.nix, in order. `below`: layers under the first
  # step (stage0 tree, base, seed). `environ`: path of the NUL-separated environment the first
  # step starts with. `checkpointEvery`: flatten the stack after that many steps (null: never).
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
    }:
    let
      n = length steps;

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
        defaultCopyUp + lib.concatMapStrings (p: "copyup ${p}\n") (copyUp.${s.attrName} or [ ])
        + lib.concatMapStrings (d: "copyuptree ${d}\n") (copyUpTrees s);

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
            + distfileLines s + copyUpLines s
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
            };
          };
          stacked = prev.layers ++ [ (asLayer drv) ];
          checkpoint = checkpointEvery != null && mod (i + 1) checkpointEvery == 0 && i + 1 < n;
          cp = mkCheckpoint {
            inherit system runner;
            name = "${prefix}checkpoint-${toString (i + 1)}";
            layers = stacked;
          };
        in
        {
          inherit drv;
          layers = if checkpoint then [ (asLayer cp) ] else stacked;
          environ = "${drv}/state/environ";
        };

      results = scan step { layers = below; inherit environ; } n;
      drvs = map (r: r.drv) results;
    in
    {
      ordered = drvs;
      byName = builtins.listToAttrs (genList (i: { name = (elemAt steps i).attrName; value = elemAt drvs i; }) n);
      final = if n == 0 then null else lib.last drvs;
      # every layer of the finished system, bottom first (for flattening or inspection)
      layers = if n == 0 then below else (lib.last results).layers;
    };
  # Which steps get every file below /usr copied up (writable in place; costs a copy of /usr
  # per step): the kaem era, where stage0's cp, tcc -ar, catm write over installed files, and
  # the bash era until the first tar built there (tar-1.12 from the kaem era opens existing
  # files with O_TRUNC when src_apply extracts a package over an earlier one; GNU tar >= 1.13
  # unlinks first, and from then on every install goes through src_apply).
  oldInstallers = steps:
    let
      isNewTar = s: s.directive == "build" && s.era == "bash" && substring 0 4 s.name == "tar-";
      newTar = filter isNewTar steps;
      limit = if newTar == [ ] then 1000000 else (builtins.head newTar).index;
    in
    s: if s.index <= limit then [ "/usr" ] else [ ];

  # The real chain: flake outputs from the generated steps/ and the stage0 build.
  # Returns { packages; checks; hydraJobs; } to merge into nix/default.nix's.
  outputs = { live-bootstrap, meta, chainSteps, stage0, profilesDir, checkpointEvery ? null }:
    let
      self = { inherit directiveText kaemHeader bashHeader expectedScripts mkRun mkCheckpoint
                 mkChain asLayer trailer defaultCopyUp; };
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
        inherit envText;
        copyUpTrees = oldInstallers chainSteps;
      };
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
      };
      checks = {
        oracle-nix = oracle { profile = "nix"; cfgText = cfgOf "nix"; expected = expectedNix; };
        oracle-bwrap-ci = oracle { profile = "bwrap-ci"; cfgText = cfgOf "bwrap-ci"; };
      };
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
  inherit directiveText kaemHeader bashHeader expectedScripts mkRun mkCheckpoint mkChain asLayer trailer defaultCopyUp outputs;
}
