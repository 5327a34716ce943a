"""``orchestrator nar``: NAR helpers (``hash`` like ``nix hash path``, ``dump`` like
``nix-store --dump``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from orchestrator.commands import options
from orchestrator.errors import OrchestratorError
from orchestrator.formats.nar import NarError, dump_nar, nar_hash


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("nar", help="NAR hash and serialisation of a path")
    sub = p.add_subparsers(dest="nar_command", required=True, metavar="SUBCOMMAND")
    h = sub.add_parser(
        "hash",
        help="print sha256:<nix32> and NAR size (= nix hash path --type sha256 --base32)",
    )
    h.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to hash")
    h.add_argument(
        "--format",
        choices=["nix32", "sri", "hex"],
        default="nix32",
        help="sha256:<nix32> as narinfo files write it (default), SRI sha256-<base64>, or sha256:<hex>",
    )
    options.json_output(h, "JSON list of {path, narHash, narSize}")
    h.set_defaults(func=run)
    d = sub.add_parser("dump", help="write PATH's NAR to stdout (= nix-store --dump)")
    d.add_argument("path", metavar="PATH", help="file or directory to serialise to stdout")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.nar_command == "dump":
        out = sys.stdout.buffer
        try:
            dump_nar(args.path, out.write)
        except NarError as exc:
            raise OrchestratorError(str(exc), file=args.path) from None
        out.flush()
        return 0
    rows = []
    for path in args.paths:
        if not os.path.lexists(path):
            raise OrchestratorError("no such file or directory", file=path)
        try:
            d = nar_hash(path)
        except NarError as exc:
            raise OrchestratorError(str(exc), file=path) from None
        shown = {
            "nix32": d.nar_hash.to_nix32(),
            "sri": d.nar_hash.to_sri(),
            "hex": d.nar_hash.to_hex(),
        }[args.format]
        rows.append({"path": path, "narHash": shown, "narSize": d.nar_size})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            line = f"{r['narHash']} {r['narSize']}"
            print(line if len(rows) == 1 else f"{line} {r['path']}")
    return 0
