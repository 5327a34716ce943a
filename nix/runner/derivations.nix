# ns-run invocations as derivations: a step's spec (the layers below it, bottom first, and what
# the caller adds), a layer made of a derivation's output, and the checkpoint that flattens a
# stack of layers into one.
{ lib }:
rec {
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
}
