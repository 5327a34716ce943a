# Reached through default.nix's ordinary import (not redirected).
{ commonPreHook = "export NIX_ENFORCE_PURITY=1"; }
