"""Nix's own formats: nix32, hashes, store paths, NAR, narinfo, and binary caches that serve them."""
