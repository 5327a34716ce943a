# Stands for nixpkgs' own stage0.nix (minimal-bootstrap): the bridge must never use it.
_: throw "the stand-in nixpkgs' own stage0.nix was imported: the redirection did not apply"
