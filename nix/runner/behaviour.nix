# Step-specific behaviour of the runner, as data: the files every step may rewrite in place,
# steps/overrides/runner/steps.json read and checked (which steps need what, each with its
# reason), and the setuid check the steps that set setuid bits depend on.
{ lib }:
let
  inherit (builtins) filter genList elemAt toString;
in
rec {
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

}
