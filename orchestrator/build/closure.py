"""The derivation closure of an installable, as ``nix show-derivation --recursive`` describes it.

What ``build`` plans from (what is not in the store yet, which distfiles are missing) and what
``audit`` classifies (every input that is not built).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import nixcli
from orchestrator.formats.storepath import STORE_DIR

FETCHURL = "builtin:fetchurl"  # the builder of every distfile (nix/fetchers.nix)


class Output(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str | None = None
    hash_algo: str | None = None  # "sha256" (flat) or "r:sha256" (recursive), as Nix 2.8 prints
    hash: str | None = None


class Derivation(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    name: str
    system: str
    builder: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, Output]
    input_drvs: dict[str, list[str]] = Field(default_factory=dict)
    input_srcs: list[str] = Field(default_factory=list)

    @property
    def fixed_output(self) -> bool:
        return any(o.hash for o in self.outputs.values())

    @property
    def output_paths(self) -> list[str]:
        return [o.path for o in self.outputs.values() if o.path]


def _abs(path: str, store_dir: str) -> str:
    return path if path.startswith("/") else f"{store_dir}/{path}"


def parse_derivations(data: dict[str, Any], store_dir: str = STORE_DIR) -> dict[str, Derivation]:
    """JSON of ``nix show-derivation`` / ``nix derivation show`` (old and new layouts)."""
    if isinstance(data.get("derivations"), dict):  # newer wrapper {"version": N, "derivations": …}
        data = data["derivations"]
    out: dict[str, Derivation] = {}
    for key, d in data.items():
        path = _abs(key, store_dir)
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        srcs = d.get("inputSrcs", inputs.get("srcs", []))
        drvs_raw = d.get("inputDrvs", inputs.get("drvs", {}))
        drvs: dict[str, list[str]] = {}
        for p, v in drvs_raw.items():
            outs = v.get("outputs", []) if isinstance(v, dict) else list(v)
            drvs[_abs(p, store_dir)] = list(outs)
        outputs: dict[str, Output] = {}
        for oname, o in d.get("outputs", {}).items():
            algo = o.get("hashAlgo")
            method = o.get("method")
            if algo and method == "nar" and not algo.startswith("r:"):
                algo = "r:" + algo
            outputs[oname] = Output(
                path=_abs(o["path"], store_dir) if o.get("path") else None,
                hash_algo=algo,
                hash=o.get("hash"),
            )
        env = {k: v if isinstance(v, str) else str(v) for k, v in d.get("env", {}).items()}
        name = d.get("name") or env.get("name") or path.rsplit("/", 1)[-1].split("-", 1)[-1][:-4]
        out[path] = Derivation(
            path=path,
            name=name,
            system=d.get("system", d.get("platform", "")),
            builder=d.get("builder", ""),
            args=list(d.get("args", [])),
            env=env,
            outputs=outputs,
            input_drvs=drvs,
            input_srcs=[_abs(s, store_dir) for s in srcs],
        )
    return out


def load_closure(
    installables: Iterable[str], cwd: str | os.PathLike[str] | None = None
) -> dict[str, Derivation]:
    return parse_derivations(nixcli.show_derivation(list(installables), recursive=True, cwd=cwd))
