# Diverse double-compiling at stage0 (docs/ddc.md): the target chain's (x86) commands, each run
# again with the same arguments and source files by the program of the same role from the host
# chain (AMD64), which was built from the other seed. If every file comes out byte-identical to
# the target chain's own, neither seed's chain put anything into these files that the other did
# not (Wheeler's test, on the chain's first compilers).
#
# Which host program takes the place of which target program is data with its reason
# (nix/ddc.json); the commands are the translator's (steps/stage0/<arch>.json), built by the same
# machinery as .#stage0 (stage0.nix's stepsOf), one derivation per command. A target command runs
# again when its program has a host counterpart and every earlier file it reads was rebuilt too;
# the others are listed with the reason (`skipped`). The comparison runs the host chain's own
# sha256sum and a small C program (ddc-verdict.c) built by the host chain's M2-Mesoplanet: no
# host binary enters any of it.
#
# Interface
#   import ./ddc.nix { stage0; steps; data ? nix/ddc.json; edit ? (steps: steps); } -> {
#     plan      the rebuilt commands, in stage0.nix's plan shape (system: the host's)
#     skipped   [ { id; why; } ]: target commands not run again, in chain order
#     steps     <id> = derivation: the target's file <id> rebuilt by the host chain
#     verdict   derivation: $out/ddc.json (docs/ddc.md), $out/sha256/ (the sha256sum outputs it
#               was made from); builds whether or not the files are identical
#     check     the same with --strict: fails, naming each file that differs, unless all are
#   }
#   `edit` rewrites the plan's steps before they are built (tests plant a fault with it).
{ stage0, steps, data ? builtins.fromJSON (builtins.readFile ./ddc.json), edit ? (s: s) }:
let
  inherit (builtins) filter foldl' length elemAt genList listToAttrs attrNames concatMap
    concatStringsSep toJSON toFile;

  planOf = arch: builtins.fromJSON (builtins.readFile (steps + "/stage0/${arch}.json"));
  target = planOf data.target;
  hostPlan = planOf data.host;
  targetChain = stage0.${data.target};
  hostChain = stage0.${data.host};

  ids = plan: listToAttrs (map (s: { name = s.id; value = s; }) plan.steps);
  targetIds = ids target;
  hostIds = ids hostPlan;

  # The data names steps of the two plans; a name that is not one (the translator renamed it,
  # upstream moved) stops evaluation here rather than building something else.
  known = what: ok: name:
    if ok then name else throw "nix/ddc.json: ${what} ${name} is not a step of steps/stage0/";
  hostOf = entry: known "host step" (hostIds ? ${entry.host}) entry.host;
  _checked = map (n: known "target step" (targetIds ? ${n}) n)
    (attrNames data.tools ++ attrNames data.not_cross);

  programOf = r:
    if r ? step then data.tools.${r.step} or null
    else if r ? src then data.seeds.${r.src} or null
    else null;
  programName = r: r.step or r.src or (toJSON r);

  # A target command, run by the host's program: the same arguments (files the target chain made
  # are this plan's own rebuilt ones), the host's PATH directories.
  cross = s: program: s // {
    name = "ddc-${s.name}";
    builder = { host = hostOf program; };
    env = builtins.mapAttrs
      (var: r:
        if r ? step then
          { host = hostOf (data.tools.${r.step}
            or (throw "nix/ddc.json: ${s.id} reads ${var} from ${r.step}, which has no host counterpart")); }
        else r)
      (s.env or { });
  };

  walk = foldl'
    (acc: s:
      let
        program = programOf s.builder;
        lacking = filter (r: r ? step && !(acc.made ? ${r.step})) s.args;
        why =
          if program == null then
            data.not_cross.${programName s.builder}
              or (throw "nix/ddc.json: ${s.id} is made by ${programName s.builder}, which is neither in tools nor in not_cross")
          else if lacking != [ ] then
            "reads ${(builtins.head lacking).step}, which is not rebuilt"
          else null;
      in
      if why == null then
        acc // { made = acc.made // { ${s.id} = true; }; steps = acc.steps ++ [ (cross s program) ]; }
      else
        acc // { skipped = acc.skipped ++ [ { inherit (s) id; inherit why; } ]; })
    { made = { }; steps = [ ]; skipped = [ ]; }
    (filter (s: s.kind == "command") target.steps);

  plan = {
    inherit (target) root;
    inherit (hostChain) system;
    steps = edit walk.steps;
  };
  built = builtins.deepSeq _checked (stage0.stepsOf { inherit plan; host = hostChain.steps; });

  # tool name -> step id of the programs the target chain leaves in bin/
  toolOf = listToAttrs (map (n: { name = target.tools.${n}; value = n; }) (attrNames target.tools));

  compared = genList
    (i:
      let s = elemAt plan.steps i; in {
        index = toString i;
        inherit (s) id;
        tool = toolOf.${s.id} or "-";
        target = targetChain.steps.${s.id};
        rebuilt = built.${s.id};
      })
    (length plan.steps);

  verdictProgram = derivation {
    name = "ddc-verdict";
    inherit (hostChain) system;
    builder = "${hostChain.tools.kaem}";
    args = [ "--verbose" "--strict" "--file" (toFile "build-ddc-verdict.kaem" ''
      mkdir -p ''${out}/bin
      M2-Mesoplanet --architecture ${data.host_architecture} -f ''${src} -o ''${out}/bin/ddc-verdict
    '') ];
    PATH = hostChain.bin;
    M2LIBC_PATH = hostChain.M2libc;
    src = ./ddc-verdict.c;
  };

  # One sha256sum per file (short kaem lines), then the verdict over their outputs. Store paths
  # reach the script as variables (toFile cannot hold them).
  compare = strict: derivation ({
    name = if strict then "ddc-stage0" else "ddc-stage0-verdict";
    inherit (hostChain) system;
    builder = "${hostChain.tools.kaem}";
    args = [ "--verbose" "--strict" "--file" (toFile "ddc-compare.kaem" (
      "mkdir -p \${out}/sha256\n"
      + concatStringsSep "" (map
        (c: "sha256sum -o \${out}/sha256/${c.index}.target \${T${c.index}}\n"
          + "sha256sum -o \${out}/sha256/${c.index}.rebuilt \${R${c.index}}\n")
        compared)
      + "ddc-verdict ${if strict then "--strict " else ""}--target ${data.target} --host ${data.host}"
      + " \${out} \${manifest} \${skippedJSON}\n")) ];
    PATH = "${hostChain.bin}:${verdictProgram}/bin";
    # index, step id, tool name ("-": an intermediate file); ids are tree paths (no blanks)
    manifest = toFile "ddc-manifest" (concatStringsSep ""
      (map (c: "${c.index} ${c.id} ${c.tool}\n") compared));
    skippedJSON = toFile "ddc-skipped.json" (toJSON walk.skipped);
  } // listToAttrs (concatMap
    (c: [
      { name = "T${c.index}"; value = c.target; }
      { name = "R${c.index}"; value = c.rebuilt; }
    ])
    compared));
in
{
  inherit plan;
  inherit (walk) skipped;
  steps = built;
  verdict = compare false;
  check = compare true;
}
