# Stands for nixpkgs' pkgs/stdenv/default.nix: which stages a non-bridged configuration gets.
{ localSystem, crossSystem, config, ... }:
{ stages = "nixpkgs-default"; system = localSystem.system; libc = localSystem.libc; cross = crossSystem != localSystem; }
