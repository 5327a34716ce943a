"""Bootstrap orchestrator: live-bootstrap's tree -> typed model -> generated Nix -> checks."""

__version__ = "0.1.0"
