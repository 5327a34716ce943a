"""Building: the live view of ``nix build``, its log protocol, and the distfiles the chain fetches."""
