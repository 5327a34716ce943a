# `nix eval FLAKE#packages.SYSTEM --apply`: the output path of each named step package, or
# null when the flake has no such package (verify --against-live-bootstrap).
# names: the step attributes, passed from Python as JSON.
names: packages:
builtins.listToAttrs (
  map (n: {
    name = n;
    value = if packages ? ${n} then packages.${n}.outPath else null;
  }) names
)
