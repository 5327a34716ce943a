"""The stdenv bridge: its members, as data read and checked before Nix sees them."""
