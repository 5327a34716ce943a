"""What a ``verify --job`` run compares: Hydra's outputs paired with local paths, and Hydra's
build products with the same files of the local outputs."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.formats.storepath import store_name
from orchestrator.verify.hydra import Build
from orchestrator.verify.local_store import LocalPath
from orchestrator.verify.pairs import Pair


class HydraProduct(BaseModel):
    """A Hydra build product with a ``sha256hash``, and the local file it is compared with."""

    model_config = ConfigDict(frozen=True)

    local_file: str  # the same relative path inside the local partner output
    owner: str  # that local output
    hydra_path: str  # the product's path in Hydra's output
    sha256: str  # Hydra's sha256hash of it


class HydraPlan(BaseModel):
    """What a ``--job`` run compares: paths against the cache, pairs, and build products."""

    direct: list[str] = Field(default_factory=list)  # local path == Hydra's output path
    pairs: list[Pair] = Field(default_factory=list)  # ours -> Hydra's output path
    products: list[HydraProduct] = Field(default_factory=list)
    unmatched: list[str] = Field(default_factory=list)  # Hydra outputs with no local partner


def plan_hydra(build: Build, locals_: Sequence[LocalPath]) -> HydraPlan:
    """Pair Hydra's outputs with local paths: equal paths, else equal store names, else (one
    output, one local target) the two of them."""
    plan = HydraPlan()
    outs = {name: o.path for name, o in sorted(build.buildoutputs.items())}
    local_paths = [lp.path for lp in locals_]
    partner: dict[str, str] = {}
    for hydra_path in outs.values():
        if hydra_path in local_paths:
            partner[hydra_path] = hydra_path
            continue
        same_name = [p for p in local_paths if store_name(p) == store_name(hydra_path)]
        if len(same_name) == 1:
            partner[hydra_path] = same_name[0]
    if not partner and len(outs) == 1 and len(local_paths) == 1:
        partner[next(iter(outs.values()))] = local_paths[0]
    for hydra_path in outs.values():
        ours = partner.get(hydra_path)
        if ours is None:
            plan.unmatched.append(hydra_path)
        elif ours == hydra_path:
            plan.direct.append(ours)
        else:
            plan.pairs.append(Pair(ours=ours, theirs=hydra_path))
    for _key, product in sorted(build.buildproducts.items()):
        if not product.path or not product.sha256hash:
            continue
        for hydra_path, ours in partner.items():
            if product.path == hydra_path or product.path.startswith(hydra_path + "/"):
                local_file = ours + product.path[len(hydra_path) :]
                plan.products.append(
                    HydraProduct(
                        local_file=local_file,
                        owner=ours,
                        hydra_path=product.path,
                        sha256=product.sha256hash,
                    )
                )
                break
    return plan
