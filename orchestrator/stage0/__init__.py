"""stage0-posix: its kaem scripts read and run symbolically, translated into per-command data for nix/stage0.nix."""
