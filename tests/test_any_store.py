"""The chain evaluates the same in a chroot store (``--store ROOT``) as in ``/nix/store``.

In a chroot store Nix hands ``builtins.path`` filters the *physical* path (``ROOT/nix/store/…``),
so a filter that compares with ``"${root}/…"`` matches nothing: the seeds' directory came out
empty and evaluation failed with ``getting status of 'ROOT/nix/store/…-hex0-seed/hex0-seed'``.
Here the drvPaths of stage0 (both arches) and of the whole chain are evaluated in a fresh chroot
store under the test's temporary directory and must equal those of the real store: the filters
then selected the same files. Evaluation only: nothing is built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, pinned_source_or_skip, run_nix

ATTRS = ["stage0", "stage0-amd64", "live-bootstrap"]


def drv_paths(tree: Path, *store: str) -> dict[str, str]:
    out = {}
    for attr in ATTRS:
        proc = run_nix(
            *store,
            "eval",
            "--raw",
            f"{REPO}#{attr}.drvPath",
            "--override-input",
            "live-bootstrap",
            f"path:{tree}",
            "--no-write-lock-file",
        )
        out[attr] = proc.stdout.strip()
    return out


def _real_source() -> Path:
    return pinned_source_or_skip()


@pytest.mark.nix
@pytest.mark.checkout
def test_pinned_source_same_drv_paths_in_a_chroot_store(nix: str, tmp_path: Path) -> None:
    source = _real_source()
    real = drv_paths(source)
    chroot = drv_paths(source, "--store", str(tmp_path / "root"))
    assert chroot == real
    # and the physical copy really holds the seeds the filters kept
    seeds = sorted((tmp_path / "root/nix/store").glob("*-hex0-seed/hex0-seed"))
    assert seeds and 181 in {s.stat().st_size for s in seeds}
