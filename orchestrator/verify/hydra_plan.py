"""What a ``verify --job`` run compares: Hydra's outputs paired with local paths, and Hydra's
build products with the same files of the local outputs."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import nixcli
from orchestrator.formats.inroot import LinkLoop, OutsideRoot, plain_parts, resolve_in_root
from orchestrator.formats.storepath import BadStorePath, check_store_path, store_name
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
    # values of Hydra's answer that break Nix's grammar: (what, why); each an error result
    invalid: list[tuple[str, str]] = Field(default_factory=list)


def hydra_outputs(build: Build) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Hydra's output paths that are store paths by Nix's grammar, and the others with why.

    Only a checked store path ever reaches ``nix path-info``: anything else would be an
    installable there, which Nix fetches, evaluates and may build."""
    outs: dict[str, str] = {}
    bad: list[tuple[str, str]] = []
    for name, o in sorted(build.buildoutputs.items()):
        try:
            outs[name] = check_store_path(o.path)
        except BadStorePath as exc:
            bad.append((f"buildoutputs.{name}.path", f"Hydra's answer: {exc}"))
    return outs, bad


def product_relpath(product_path: str, output: str) -> str | None:
    """The product's path inside ``output`` (``""`` for the output itself), None when it is not
    in that output; BadStorePath when it is but has an empty, ``.`` or ``..`` component."""
    if product_path == output:
        return ""
    if not product_path.startswith(output + "/"):
        return None
    rel = product_path[len(output) + 1 :]
    if plain_parts(rel) is None:
        raise BadStorePath(
            f"{product_path!r} is not a plain path inside {output} "
            "(an empty, '.' or '..' component)"
        )
    return rel


def plan_hydra(build: Build, locals_: Sequence[LocalPath]) -> HydraPlan:
    """Pair Hydra's outputs with local paths: equal paths, else equal store names, else (one
    output, one local target) the two of them."""
    plan = HydraPlan()
    outs, plan.invalid = hydra_outputs(build)
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
    for key, product in sorted(build.buildproducts.items()):
        if not product.path or not product.sha256hash:
            continue
        for hydra_path, ours in partner.items():
            try:
                rel = product_relpath(product.path, hydra_path)
            except BadStorePath as exc:
                plan.invalid.append((f"buildproducts.{key}.path", f"Hydra's answer: {exc}"))
                break
            if rel is None:
                continue
            plan.products.append(
                HydraProduct(
                    local_file=f"{ours}/{rel}" if rel else ours,
                    owner=ours,
                    hydra_path=product.path,
                    sha256=product.sha256hash,
                )
            )
            break
    return plan


def product_file(owner: str, local_file: str) -> str:
    """The regular file on disk that ``local_file`` (``owner`` or ``owner/<plain relpath>``)
    names, its symlinks followed only inside ``owner`` (the shared resolver; an absolute or
    climbing link is refused, never followed to a file of this machine). OSError naming the
    reason when it is outside, a loop, missing, or not a regular file."""
    if local_file == owner:
        rel = ""
    elif local_file.startswith(owner + "/") and plain_parts(local_file[len(owner) + 1 :]):
        rel = local_file[len(owner) + 1 :]
    else:
        raise OSError(f"{local_file!r} is not a plain path inside {owner}")
    root = nixcli.real_path(owner)

    def read_link(r: str) -> str | None:
        p = os.path.join(root, r)
        return os.readlink(p) if os.path.islink(p) else None

    try:
        resolved = resolve_in_root(rel, read_link, absolute="refuse")
    except (OutsideRoot, LinkLoop) as exc:
        raise OSError(f"{local_file}: {exc} (refusing to hash a file outside the output)") from None
    disk = os.path.join(root, resolved) if resolved else root
    st = os.lstat(disk)  # FileNotFoundError when the output lacks it
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{local_file} is not a regular file")
    return disk
