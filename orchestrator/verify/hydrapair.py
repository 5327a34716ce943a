"""``verify --against-hydra TARGET --pair-with-hydra``: a bridged closure against Hydra's build.

The bridge bootstraps nixpkgs from live-bootstrap, Hydra from nixpkgs' own minimal-bootstrap, so
every store path differs. The comparison is therefore *equal modulo store paths*, over the whole
runtime closure:

1. Roots, paired by attribute: our output of TARGET with Hydra's output of the same attribute.
   Hydra's path is the pinned nixpkgs' outPath evaluated without the bridge (input-addressed, so
   evaluation gives the path Hydra built): the flake output ``lib.bridge.hydraPartners.<attr>``.
   ``--theirs PATH`` names it instead, and ``--job`` pairs Hydra's build outputs as before.
2. The closures are walked side by side, breadth first: ours from the local store, Hydra's from
   the cache's narinfos (``References``). The references of each pair are paired by store name
   when the name occurs exactly once among the not yet paired references on each side.
3. Every pair goes to verify's pair check (ours' NAR rewritten through *all* pairings, hashed,
   compared with Hydra's signed NarHash; ``--diff`` unpacks both). A path of ours with no partner
   is reported ``not-in-cache``: missing on Hydra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from orchestrator.errors import OrchestratorError
from orchestrator.formats.binary_cache import BinaryCache, CacheError, HttpClient
from orchestrator.formats.storepath import hash_part, store_name, store_path_of
from orchestrator.nixcli import nix_json, program
from orchestrator.verify.local_store import LocalPath
from orchestrator.verify.pairs import Pair
from orchestrator.verify.report import PathResult, Status

# A flake's partner attribute for TARGET (`<flake>#<attr>`): the same attribute, unbridged.
PARTNERS_ATTR = "lib.bridge.hydraPartners"

# Said next to an ISO's product check: its bytes embed store paths, which the pairing cannot
# rewrite inside the compressed squashfs.
ISO_NOTE = (
    "the ISO's sha256 is expected to differ from Hydra's only through store paths: the image "
    "embeds its closure's paths inside a compressed squashfs, where they cannot be rewritten; "
    "its store contents are compared path by path above"
)


class PairedClosure(BaseModel):
    pairs: list[Pair] = Field(default_factory=list)
    missing: list[PathResult] = Field(default_factory=list)  # ours, nothing on Hydra's side


def partner_roots(targets: Sequence[str]) -> list[Pair]:
    """Our outputs of each flake installable with the unbridged outputs of the same attribute,
    by output name, plus the derivations' ``hydraPairRoots`` in order (the ISO names its
    system's toplevel there: the image itself hides its store paths). Needs a Nix that can
    evaluate the pinned nixpkgs."""
    pairs: list[Pair] = []
    apply = program("pair-roots", {})  # nixexpr/pair-roots.nix
    for t in targets:
        if store_path_of(t) is not None or "#" not in t:
            raise OrchestratorError(
                f"--pair-with-hydra needs a flake attribute (e.g. .#hello) to find Hydra's "
                f"partner of {t!r}",
                hint="or name Hydra's path with --theirs /nix/store/...",
            )
        flake, attr = t.split("#", 1)
        ours = nix_json(["eval", t, "--apply", apply])
        theirs = nix_json(["eval", f"{flake}#{PARTNERS_ATTR}.{attr}", "--apply", apply])
        for out, path in sorted(ours["outs"].items()):
            if out in theirs["outs"]:
                pairs.append(Pair(ours=path, theirs=theirs["outs"][out]))
        extra = zip(ours["extra"], theirs["extra"], strict=False)  # nixpkgs gives both or neither
        pairs += [Pair(ours=a, theirs=b) for a, b in extra]
    return pairs


def _by_name(paths: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in paths:
        out.setdefault(store_name(p), []).append(p)
    return out


async def pair_closures(
    roots: Sequence[Pair], ours: dict[str, LocalPath], cache: BinaryCache
) -> PairedClosure:
    """Walk our closure (``ours``: local path info by path, the closure of the roots) and
    Hydra's (narinfos from ``cache``) side by side from ``roots``."""
    result = PairedClosure()
    partner: dict[str, str] = {}
    taken: set[str] = set()
    level = []
    for root in roots:
        if root.ours not in partner and root.theirs not in taken:
            partner[root.ours] = root.theirs
            taken.add(root.theirs)
            level.append(root)
    result.pairs.extend(level)
    reasons: dict[str, str] = {}

    async def refs_of(path: str) -> list[str] | None:
        try:
            info = await cache.narinfo(hash_part(path))
        except (CacheError, OrchestratorError):
            return None
        return None if info is None or info.store_path != path else info.reference_paths()

    while level:
        theirs_refs = await asyncio.gather(*(refs_of(p.theirs) for p in level))
        nxt: list[Pair] = []
        for pair, t_refs in zip(level, theirs_refs, strict=True):
            o_info = ours.get(pair.ours)
            o_refs = [r for r in (o_info.references if o_info else []) if r != pair.ours]
            o_free = [r for r in o_refs if r not in partner]
            if t_refs is None:
                for r in o_free:
                    reasons.setdefault(
                        r, f"Hydra's {pair.theirs} (partner of a referrer) has no narinfo"
                    )
                continue
            t_by = _by_name(r for r in t_refs if r != pair.theirs and r not in taken)
            for name, os_ in _by_name(o_free).items():
                ts = t_by.get(name, [])
                if len(os_) == 1 and len(ts) == 1:
                    partner[os_[0]] = ts[0]
                    taken.add(ts[0])
                    nxt.append(Pair(ours=os_[0], theirs=ts[0]))
                else:
                    for r in os_:
                        reasons.setdefault(
                            r,
                            f"no single path named {name} among the references of Hydra's "
                            f"{pair.theirs} ({len(ts)} candidates)",
                        )
        result.pairs.extend(nxt)
        level = nxt
    for path in ours:
        if path not in partner:
            result.missing.append(
                PathResult(
                    kind="pair",
                    path=path,
                    status=Status.not_in_cache,
                    reason="missing on Hydra: "
                    + reasons.get(path, "not reachable from a paired path of Hydra's closure"),
                )
            )
    return result


def pair_with_hydra(
    targets: Sequence[str],
    locals_: Sequence[LocalPath],
    job_pairs: Sequence[Pair],
    *,
    theirs: str | None,
    cache_url: str,
    jobs: int,
    timeout: float,
    retries: int,
    client: HttpClient = "builtin",
) -> tuple[dict[str, LocalPath], list[Pair], list[LocalPath], list[PathResult]]:
    """The hook of ``verify``: (our closure's path info, the pairs, the paths both sides share
    -- fixed-output sources, mostly: checked against the cache directly --, ours missing on
    Hydra)."""
    roots = list(job_pairs)
    if theirs is not None:
        sp = store_path_of(theirs)
        if sp is None or len(locals_) != 1:
            raise OrchestratorError(
                "--theirs names Hydra's partner of exactly one TARGET, as a store path"
            )
        roots.insert(0, Pair(ours=locals_[0].path, theirs=sp))
    elif not job_pairs:
        roots = partner_roots(targets)
    if not roots:
        raise OrchestratorError("--pair-with-hydra: no output of ours pairs with one of Hydra's")
    from orchestrator.verify.local_store import query_local

    closure = {lp.path: lp for lp in query_local([r.ours for r in roots], closure=True)}

    async def walk() -> PairedClosure:
        async with BinaryCache(
            cache_url, concurrency=jobs, timeout=timeout, retries=retries, client=client
        ) as c:
            return await pair_closures(roots, closure, c)

    paired = asyncio.run(walk())
    shared = [closure[p.ours] for p in paired.pairs if p.ours == p.theirs and p.ours in closure]
    pairs = [p for p in paired.pairs if p.ours != p.theirs]
    return closure, pairs, shared, paired.missing
