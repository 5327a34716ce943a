# `nix eval INSTALLABLE --apply`: a derivation's outputs by name, and the roots it names for
# pairing with Hydra's build (hydraPairRoots: the ISO names its system's toplevel there).
# The data argument is unused ({}), so every program here has the same shape: data -> value.
_: drv: {
  outs = builtins.listToAttrs (
    map (o: {
      name = o;
      value = drv.${o}.outPath;
    }) (drv.outputs or [ "out" ])
  );
  extra = map (e: e.outPath) (drv.hydraPairRoots or [ ]);
}
