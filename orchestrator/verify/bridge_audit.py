"""The audit of a bridged output (``orchestrator audit stdenv | hello | nixos-iso``).

A bridged closure is the chain (whose only binaries are the two seeds) plus nixpkgs built on it.
nixpkgs fetches sources as fixed-output derivations, and for a few languages it bootstraps from
upstream binaries (rustc, go, ghc, ...): those are named, one by one, as ``binary-bootstrap``.
Anything of nixpkgs' *own* bootstrap -- a derivation of its minimal-bootstrap (by .drv path, as
nixpkgs' own stage0.nix defines it), its bootstrapFiles downloads (by name or URL) -- must not be
there at all: ``nixpkgs-bootstrap``, and the audit fails.

The policy is the flake output ``lib.bridge.policy`` (stdenv-bridge/closure-policy.json plus the
.drv paths computed from the pinned nixpkgs), so the Nix check and this audit share one list.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from orchestrator.build.closure import Derivation
from orchestrator.nixcli import nix_json

# The flake's bridged outputs: audited with the policy below.
BRIDGED_TARGETS = ("stdenv", "hello", "nixos-iso")
POLICY_ATTR = "lib.bridge.policy"


class BinaryBootstrap(BaseModel):
    name: str
    url_contains: str
    why: str


class Policy(BaseModel):
    rev: str = ""
    forbidden_drv_paths: list[str] = Field(default_factory=list)
    forbidden_fod_names: dict[str, str] = Field(default_factory=dict)
    forbidden_url_prefixes: dict[str, str] = Field(default_factory=dict)
    binary_bootstraps: list[BinaryBootstrap] = Field(default_factory=list)


class BridgeFinding(BaseModel):
    kind: str  # "binary-bootstrap" | "nixpkgs-bootstrap"
    name: str
    drv: str
    url: str | None = None
    why: str
    used_by: list[str] = Field(default_factory=list)


class BridgeAudit(BaseModel):
    nixpkgs_rev: str
    binary_bootstraps: list[BridgeFinding]
    nixpkgs_bootstrap: list[BridgeFinding]

    @property
    def ok(self) -> bool:
        return not self.nixpkgs_bootstrap


def is_bridged_target(target: str) -> bool:
    attr = target.split("#", 1)[-1]
    return attr in BRIDGED_TARGETS or attr.startswith("legacyPackages.")


def load_policy(flake: str) -> Policy:
    return Policy.model_validate(nix_json(["eval", f"{flake}#{POLICY_ATTR}"]))


def _urls(drv: Derivation) -> list[str]:
    urls = drv.env.get("urls", "").split()
    return urls or ([drv.env["url"]] if drv.env.get("url") else [])


def audit_bridged(closure: dict[str, Derivation], policy: Policy) -> BridgeAudit:
    users: dict[str, set[str]] = {}
    for drv in closure.values():
        for dep in drv.input_drvs:
            users.setdefault(dep, set()).add(drv.name)
    forbidden_paths = set(policy.forbidden_drv_paths)
    binaries: list[BridgeFinding] = []
    forbidden: list[BridgeFinding] = []
    for path in sorted(closure):
        drv = closure[path]
        used_by = sorted(users.get(path, set()))
        urls = _urls(drv)
        why = None
        if path in forbidden_paths:
            why = f"a derivation of nixpkgs' own minimal-bootstrap (nixpkgs {policy.rev})"
        elif drv.fixed_output and drv.name in policy.forbidden_fod_names:
            why = policy.forbidden_fod_names[drv.name]
        elif drv.fixed_output:
            why = next(
                (
                    w
                    for prefix, w in policy.forbidden_url_prefixes.items()
                    for u in urls
                    if u.startswith(prefix)
                ),
                None,
            )
        if why is not None:
            forbidden.append(
                BridgeFinding(
                    kind="nixpkgs-bootstrap",
                    name=drv.name,
                    drv=path,
                    url=urls[0] if urls else None,
                    why=why,
                    used_by=used_by,
                )
            )
            continue
        if drv.fixed_output:
            for b in policy.binary_bootstraps:
                url = next((u for u in urls if b.url_contains in u), None)
                if url is not None:
                    binaries.append(
                        BridgeFinding(
                            kind="binary-bootstrap",
                            name=f"{b.name}: {drv.name}",
                            drv=path,
                            url=url,
                            why=b.why,
                            used_by=used_by,
                        )
                    )
                    break
    return BridgeAudit(
        nixpkgs_rev=policy.rev, binary_bootstraps=binaries, nixpkgs_bootstrap=forbidden
    )
