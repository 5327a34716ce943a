"""Test support, one module per stage it serves (the helpers tests share, never tests):

- ``trees``: small live-bootstrap-shaped trees on disk (upstream);
- ``stage0``: kaem scripts read without running them (stage0);
- ``maintain``: the narHash of a tree as Nix's git fetcher stores it (maintain);
- ``cache``: real derivations, a real binary cache made by ``nix copy`` and served on 127.0.0.1
  (verify);
- ``golden``: input -> expected-output cases under ``tests/golden/`` (printer and parsers).

The runner's synthetic chain lives in ``tests/runner_support`` (with the Nix it builds).
"""
