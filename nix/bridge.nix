# The stdenv bridge, part 1: the chain's final system becomes the seed package set of a nixpkgs
# x86_64-linux stdenv (what nixpkgs' pkgs/stdenv/linux/stage0.nix hands to its stages).
#
# Data: stdenv-bridge/members.json (versions, sources with upstream's sha256, the nixpkgs
# counterpart of each member). Recipes: stdenv-bridge/*.sh, files run unmodified. Every step is
# one derivation run by the chain's own runner (ns-run, nix/runner.nix's mkRun) over the
# flattened final system (.#live-bootstrap), so no host tool and no nixpkgs enters any of it.
#
# Unlike a chain step, a bridge step's result is a store path of its own ($out, bind-mounted at
# its own path inside the root, so --prefix=$out works and glibc's ld scripts and gcc's specs name
# real store paths); the overlay's upper layer goes to the second output `layer` (ns-run's usual
# tree/, deletions, state/; normally empty). Later steps see earlier ones bind-mounted read-only
# at their store paths. Each member ends with stdenv-bridge/check-store-only.sh, which fails the
# member, naming the file, when anything in it would look outside the store at run time.
{ lib, runnerLib }:
{ data                # builtins.fromJSON of members.json
, scripts             # the directory holding the step scripts (stdenv-bridge/)
, fetchDistfile
, system
, runner              # ns-run
, below               # layers of the final system, bottom first
, chainSteps          # the chain's step data, in order (steps/*.nix)
, chainByName         # attrName -> step derivation
, dataFile ? "stdenv-bridge/members.json"
, prefix ? "bridge-"
, bash ? "/usr/bin/bash"
}:
let
  inherit (builtins) length elemAt filter map listToAttrs pathExists
    replaceStrings attrNames concatStringsSep;

  steps = data.steps;
  n = length steps;
  varName = replaceStrings [ "-" ] [ "_" ];
  names = map (s: s.name) steps;
  where = s: "${dataFile}: step ${s.name}";

  # --- checks of the data (evaluation stops with file, step and both versions named) ----------

  scriptPath = s: file:
    if pathExists (scripts + "/${file}") then scripts + "/${file}"
    else throw "${where s}: script ${file} does not exist in stdenv-bridge/";

  # "2.46.0" and "2.46" are one release (stdenv-bridge/versions.nix); an exception names the
  # nixpkgs seed that ships the same newer version (members.json: nixpkgs.exception)
  versions = import ../stdenv-bridge/versions.nix;
  checkVersion = s:
    if !(s ? nixpkgs) || !(s.nixpkgs ? version) then
      throw "${where s}: no nixpkgs counterpart version (nixpkgs.version) to check ${s.version} against"
    else if !(versions.atLeast s.nixpkgs.version s.version)
      && !(s.nixpkgs ? exception && versions.atLeast s.nixpkgs.exception.version s.version) then
      throw "${where s}: ${s.name} ${s.version} is newer than the pinned nixpkgs' ${s.nixpkgs.attr or s.name} ${s.nixpkgs.version} (${s.nixpkgs.from or "?"}); a seed newer than nixpkgs' own libraries breaks its stage-1 tools: pick ${s.nixpkgs.version} or older"
    else true;

  checkSource = s: src:
    if !(src ? sha256) || src.sha256 == "" || src.sha256 == null then
      throw "${where s}: source ${src.file or src.url or "?"} has no sha256"
    else if !(src ? url) || !(src ? file) then
      throw "${where s}: source ${src.file or src.sha256} needs file and url"
    else true;

  checkInputs = i: s:
    let before = builtins.genList (j: (elemAt steps j).name) i;
    in builtins.all (x:
      if builtins.elem x before then true
      else throw "${where s}: input ${x} is not an earlier bridge step (${concatStringsSep ", " before})")
      (s.inputs or [ ]);

  # the chain step a member is taken from: the last build with that package name
  chainStepOf = s:
    let
      builds = filter (c: c.directive == "build" && c.name == s.step) chainSteps;
      suffix = "-${s.version}";
      ls = builtins.stringLength s.step;
      lv = builtins.stringLength suffix;
    in
    if ls <= lv || builtins.substring (ls - lv) lv s.step != suffix then
      throw "${where s}: chain step ${s.step} does not end in its version ${s.version}"
    else if builds == [ ] then
      throw "${where s}: the chain has no build of ${s.step} (steps/ of this live-bootstrap revision)"
    else chainByName.${(lib.last builds).attrName};

  # --- derivations ---------------------------------------------------------------------------

  distfileOf = src: fetchDistfile { name = src.file; inherit (src) sha256; urls = [ src.url ]; };

  runStep = scriptPath { name = "driver"; } "run-step.sh";
  checker = scriptPath { name = "driver"; } "check-store-only.sh";

  # the versions a step sees: its inputs' and those it names in "versions" (gcc-pass1 needs
  # glibc's before glibc exists); only these, so that bumping one step rebuilds only what uses it
  stepByName = listToAttrs (map (s: { name = s.name; value = s; }) steps);
  versionLines = s: lib.concatMapStrings
    (x: if stepByName ? ${x} then "setenv version_${varName x}=${stepByName.${x}.version}\n"
        else throw "${where s}: versions names ${x}, which is not a bridge step")
    ((s.inputs or [ ]) ++ (s.versions or [ ]));

  mkStep = i: s:
    let
      fromChain = s ? step;
      sources = s.sources or [ ];
      ok = checkVersion s
        && builtins.all (checkSource s) sources
        && checkInputs i s
        && (fromChain || sources != [ ] || throw "${where s}: neither sources nor a chain step");
      distfiles = map distfileOf sources;
      inputs = map (x: byName.${x}) (s.inputs or [ ]);
      stepBin = "${chainStepOf s}/tree/usr/bin";
      links = lib.concatMapStrings (l: " ${l}=${s.links.${l}}") (attrNames (s.links or { }));
      drv = runnerLib.mkRun {
        inherit system runner;
        name = "${prefix}${s.name}-${s.version}";
        label = "bridge ${s.name} ${s.version} (bridge step ${toString (i + 1)} of ${toString n})";
        layers = below;
        spec = ''
          layer-output layer
          output out
          scratch /bridge/build
        ''
        + lib.concatMapStrings (d: "bind ${d} ${d}\n") inputs
        + (if fromChain then "bind ${stepBin} /bridge/step-bin\n" else "")
        + lib.concatMapStrings (d: "distfile ${d.fileName} ${d}\n") distfiles
        + ''
          copyin ${runStep} /tmp/.runner/run-step.sh
          copyin ${scriptPath s s.script} /tmp/.runner/step.sh
          copyin ${checker} /tmp/.runner/check-store-only.sh
          setenv PATH=/usr/bin:/usr/sbin:/bin
          setenv HOME=/tmp
          setenv TMPDIR=/tmp
          setenv SOURCE_DATE_EPOCH=1
          setenv name=${s.name}
          setenv version=${s.version}
          setenv target=${data.target}
          passenv out
          passenv NIX_BUILD_CORES
          passenv NIX_STORE
        ''
        + (if distfiles != [ ] then
            "setenv src=/external/distfiles/${(builtins.head distfiles).fileName}\n"
            + "setenv srcs=${concatStringsSep " " (map (d: "/external/distfiles/${d.fileName}") distfiles)}\n"
           else "")
        + lib.concatMapStrings (x: "setenv ${varName x}=${byName.${x}}\n") (s.inputs or [ ])
        + (if fromChain then
            "setenv step_bin=/bridge/step-bin\nsetenv bins=${concatStringsSep " " (s.bin or [ ])}\nsetenv links=${links}\n"
           else "")
        + versionLines s
        + ''
          cwd /
          arg ${bash}
          arg /tmp/.runner/run-step.sh
          arg /tmp/.runner/step.sh
          arg /tmp/.runner/check-store-only.sh
        '';
        extra = {
          outputs = [ "out" "layer" ];
          pname = s.name;
          inherit (s) version;
          # for people and tools reading the derivation (orchestrator build numbers the steps)
          lbStep = "${prefix}${s.name}";
          lbDirective = "bridge";
          lbIndex = toString i;
        };
      };
    in
    if ok then drv // {
      pname = s.name;
      inherit (s) version;
      bridgeMember = s.member or false;
      nixpkgsCounterpart = s.nixpkgs;
    } else throw "unreachable";

  byName = listToAttrs (lib.imap0 (i: s: { name = s.name; value = mkStep i s; }) steps);
  memberNames = map (s: s.name) (filter (s: s.member or false) steps);
  members = listToAttrs (map (m: { name = m; value = byName.${m}; }) memberNames);

  # "runs from its own store path": each member's test in a plain sandboxed derivation, no
  # runner, no root around it, the member's bash as the builder -- as nixpkgs' stages use them.
  # (only the members the test names, so that one failing member does not block the others')
  mentions = text: m: builtins.match ".*[$][{]?${varName m}([^a-zA-Z0-9_].*)?" text != null;
  memberVars = text: listToAttrs (map (m: { name = varName m; value = members.${m}; })
    (filter (mentions text) memberNames));
  testOf = s: derivation ({
    name = "${prefix}${s.name}-${s.version}-runs";
    inherit system;
    builder = "${members.bash}/bin/bash";
    args = [ "-c" "set -e\n${s.test}\necho ok > \"$out\"\n" ];
  } // memberVars s.test);
  tests = listToAttrs (map (s: { name = s.name; value = testOf s; })
    (filter (s: (s.member or false) && s ? test) steps));

  # one output linking every member (made with the set's own bash and coreutils)
  all = derivation {
    name = "${prefix}set";
    inherit system;
    builder = "${members.bash}/bin/bash";
    args = [ "-c" (''
      ${members.coreutils}/bin/mkdir "$out"
    '' + lib.concatMapStrings (m: ''
      ${members.coreutils}/bin/ln -s ${members.${m}} "$out/${m}"
    '') memberNames) ];
  };
in
{
  inherit members byName tests all memberNames;
  ordered = map (s: byName.${s.name}) steps;
  # flake outputs: `bridge` (the set, with each member and its test as attributes, so that
  # `nix build .#bridge.glibc` works) and `bridge-<step>` for every step
  packages = { bridge = all // members // { inherit tests; steps = byName; }; }
    // listToAttrs (map (s: { name = "${prefix}${s}"; value = byName.${s}; }) names);
  hydraJobs = members // { set = all; steps = byName; inherit tests; };
}
