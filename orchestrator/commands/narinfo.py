"""``orchestrator narinfo check FILE...``: parse narinfo files and check their signatures.

Exit 0 only when every file parses and carries a signature that verifies with a trusted key;
2 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.commands import options
from orchestrator.errors import OrchestratorError
from orchestrator.formats.narinfo import (
    DEFAULT_TRUSTED_KEY,
    check_signatures,
    parse_narinfo,
    parse_public_key,
)


class NarinfoCheck(BaseModel):
    file: str
    status: str  # "trusted" | "untrusted" | "error"
    store_path: str | None = None
    nar_hash: str | None = None
    nar_size: int | None = None
    compression: str | None = None
    fingerprint: str | None = None
    signatures: list[dict[str, str]] = Field(default_factory=list)
    reason: str | None = None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("narinfo", help="narinfo helpers")
    sub = p.add_subparsers(dest="narinfo_command", required=True, metavar="SUBCOMMAND")
    c = sub.add_parser("check", help="parse narinfo files and verify their signatures")
    c.add_argument("files", nargs="+", metavar="FILE", help="narinfo files to check")
    c.add_argument(
        "--trusted-key",
        action="append",
        metavar="NAME:KEY",
        help=f"trusted public key, repeatable (default {DEFAULT_TRUSTED_KEY})",
    )
    options.json_output(c, "JSON list on stdout")
    c.set_defaults(func=run)


def check_file(path: str, keys: list[Any]) -> NarinfoCheck:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return NarinfoCheck(file=path, status="error", reason=exc.strerror)
    try:
        info = parse_narinfo(text, source=path)
        sigs = check_signatures(info, keys)
    except (OrchestratorError, ValueError) as exc:
        return NarinfoCheck(file=path, status="error", reason=str(exc))
    return NarinfoCheck(
        file=path,
        status="trusted" if sigs.trusted else "untrusted",
        store_path=info.store_path,
        nar_hash=info.nar_hash.to_nix32(),
        nar_size=info.nar_size,
        compression=info.compression,
        fingerprint=sigs.fingerprint,
        signatures=[{"key": c.key_name, "status": c.status.value} for c in sigs.checks],
        reason=sigs.reason(),
    )


def run(args: argparse.Namespace) -> int:
    keys = [parse_public_key(k) for k in (args.trusted_key or [DEFAULT_TRUSTED_KEY])]
    rows = [check_file(f, keys) for f in args.files]
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
    else:
        table = Table()
        table.add_column("file", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("signatures / reason", overflow="fold")
        style = {"trusted": "green", "untrusted": "bold magenta", "error": "bold red"}
        for r in rows:
            sigs = ", ".join(f"{s['key']}: {s['status']}" for s in r.signatures)
            detail = sigs if r.status == "trusted" else (r.reason or sigs)
            table.add_row(escape(r.file), f"[{style[r.status]}]{r.status}[/]", escape(detail))
        Console(highlight=False).print(table)
    return 0 if all(r.status == "trusted" for r in rows) else 2
