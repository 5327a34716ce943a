"""Small live-bootstrap-shaped trees built by tests (a checkout stand-in, files on disk)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_ENV = "DISTFILES=/external/distfiles\nPREFIX=/usr\nBINDIR=${PREFIX}/bin\n"


def make_tree(
    root: Path,
    *,
    manifest: str,
    steps: dict[str, dict[str, str]],
    env: str = DEFAULT_ENV,
    pkgs: str = "",
    extra: dict[str, str] | None = None,
) -> Path:
    """Write steps/manifest, steps/<pkg>/<file> for each entry, steps/env and SHA256SUMS.pkgs."""
    (root / "steps").mkdir(parents=True, exist_ok=True)
    (root / "steps/manifest").write_text(manifest)
    (root / "steps/env").write_text(env)
    (root / "steps/SHA256SUMS.pkgs").write_text(pkgs)
    for pkg, files in steps.items():
        for name, text in files.items():
            path = root / "steps" / pkg / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for rel, text in (extra or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
