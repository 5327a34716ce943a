"""``orchestrator verify --rebuild``: build a target again with ``nix build --rebuild`` and
compare the two local builds."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from orchestrator.errors import NixError
from orchestrator.formats.nar import NarError, nar_hash
from orchestrator.nixcli import nix_json, run_nix
from orchestrator.verify.local_store import target_store_path
from orchestrator.verify.nardiff import run_diff
from orchestrator.verify.report import PathResult, Status


def rebuild_target(
    target: str, *, keep_failed: bool, sandbox: bool | None = None
) -> list[PathResult]:
    """``nix build`` (if needed) then ``nix build --rebuild``; one result per output path."""
    started = time.monotonic()
    installable = target
    sp = target_store_path(target)
    if sp is not None and not sp.endswith(".drv"):
        # A store-path installable is opaque: `nix build --rebuild` would silently do nothing.
        info = nix_json(["path-info", sp])[0]
        deriver = info.get("deriver") if info.get("valid", True) else None
        if not deriver:
            return [
                PathResult(
                    kind="rebuild",
                    path=sp,
                    status=Status.error,
                    reason="cannot rebuild: the local store knows no derivation for this path",
                    hint="name the installable or the .drv instead",
                )
            ]
        installable = deriver
    elif sp is not None:
        installable = sp
    try:
        built = nix_json(["build", "--no-link", installable], sandbox=sandbox)
    except NixError as exc:
        return [PathResult(kind="rebuild", path=target, status=Status.error, reason=exc.message)]
    outputs = [p for b in built for p in (b.get("outputs") or {}).values()]
    args = ["build", "--no-link", "--rebuild", installable]
    if keep_failed:
        args.insert(1, "--keep-failed")
    proc = run_nix(args, check=False, sandbox=sandbox)
    differing = dict(re.findall(r"output '([^']+)' differs from '([^']+)'", proc.stderr or ""))
    results = []
    for out in outputs:
        r = PathResult(kind="rebuild", path=out, status=Status.error)
        try:
            digest = nar_hash(out)
            r.local_nar_hash, r.local_nar_size = digest.nar_hash.to_nix32(), digest.nar_size
            if out in differing:
                r.status = Status.differs
                r.theirs = differing[out]
                r.reason = "a second local build gave a different output"
                if os.path.exists(differing[out]):
                    d2 = nar_hash(differing[out])
                    r.remote_nar_hash, r.remote_nar_size = d2.nar_hash.to_nix32(), d2.nar_size
                    if keep_failed:
                        r.diff = run_diff(Path(out), Path(differing[out]))
                else:
                    r.hint = "pass --diff to keep the second build (nix build --keep-failed)"
            elif proc.returncode == 0:
                r.status = Status.reproducible
                r.remote_nar_hash, r.remote_nar_size = r.local_nar_hash, r.local_nar_size
                r.reason = "a second local build gave the same output"
            else:
                tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
                r.reason = f"nix build --rebuild failed (exit {proc.returncode}): {tail}"
        except (NarError, OSError) as exc:
            r.reason = str(exc)
        r.seconds = round(time.monotonic() - started, 3)
        results.append(r)
    # kept build directories are noise once the .check output exists
    for d in re.findall(r"keeping build directory '([^']+)'", proc.stderr or ""):
        shutil.rmtree(d, ignore_errors=True)
    return results
