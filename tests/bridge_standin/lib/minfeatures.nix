# Stands for nixpkgs' lib/minfeatures.nix: one feature every Nix since 2.0 has.
let
  features = [ { description = "`builtins.nixVersion` reports at least 2.0"; condition = builtins.compareVersions "2.0" builtins.nixVersion != 1; } ];
  e = builtins.partition ({ condition, ... }: condition) features;
in
{ all = features; supported = e.right; missing = e.wrong; }
