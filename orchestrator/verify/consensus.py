"""Several caches (rebuilders) side by side, as ``guix challenge`` compares every substitute
server: each path gets one verdict per cache and a consensus.

Each cache is checked by its own ``Verifier`` (the one-cache engine, unchanged); this module only
combines their results, which come back in the same input order for every cache.

Consensus of one path (``PathResult.consensus``):

* ``all-agree``: every cache that signed a NarHash with a trusted key signed the local one;
* ``caches-disagree``: two trusted caches signed different NarHashes;
* ``local-differs``: the trusted caches agree with each other, not with the local build;
* ``no-trusted-answer``: no cache had a trusted narinfo for it (not in any cache, untrusted,
  errors, or not built here).

The combined status is the most serious one: ``differs`` when any trusted cache signed another
NarHash than the local build's, then ``error``, ``untrusted``, ``reproducible``,
``equal-modulo-store-paths``, ``not-in-cache``, ``not-built-locally``. A cache that signed a
differing NarHash is named in ``Report.disagreeing_caches`` and makes the exit code 1 (2 when
something else is untrusted or errored, as with one cache).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.verify.report import CacheSummary, CacheVerdict, PathResult, Status, Summary

ALL_AGREE = "all-agree"
CACHES_DISAGREE = "caches-disagree"
LOCAL_DIFFERS = "local-differs"
NO_TRUSTED_ANSWER = "no-trusted-answer"

# most serious first: the combined status of a path is the first any cache gave
SEVERITY = [
    Status.differs,
    Status.error,
    Status.untrusted,
    Status.reproducible,
    Status.equal_modulo_store_paths,
    Status.not_in_cache,
    Status.not_built_locally,
]
# statuses that mean the cache's narinfo carried a trusted signature over its NarHash
SIGNED = (Status.reproducible, Status.equal_modulo_store_paths, Status.differs)


def verdict(cache: str, r: PathResult) -> CacheVerdict:
    return CacheVerdict(
        cache=cache,
        status=r.status,
        remote_nar_hash=r.remote_nar_hash,
        remote_nar_size=r.remote_nar_size,
        signed_by=list(r.signed_by),
        reason=r.reason,
    )


def combine_one(per_cache: Sequence[tuple[str, PathResult]]) -> PathResult:
    """One path's results from every cache (same path, same order of caches) as one result."""
    verdicts = [verdict(url, r) for url, r in per_cache]
    signed = {(v.remote_nar_hash, v.remote_nar_size) for v in verdicts if v.status in SIGNED}
    differing = [v.cache for v in verdicts if v.status == Status.differs]
    if len(signed) > 1:
        consensus = CACHES_DISAGREE
    elif differing:
        consensus = LOCAL_DIFFERS
    elif signed:
        consensus = ALL_AGREE
    else:
        consensus = NO_TRUSTED_ANSWER
    status = min((v.status for v in verdicts), key=SEVERITY.index)
    deciding = next(r for _, r in per_cache if r.status == status)
    combined = deciding.model_copy(deep=True)
    combined.per_cache = verdicts
    combined.consensus = consensus
    combined.seconds = max((r.seconds or 0.0) for _, r in per_cache)
    if consensus == CACHES_DISAGREE:
        combined.reason = (
            f"caches disagree: {len(signed)} different signed NarHashes; "
            f"differing from the local build: {', '.join(differing) or 'none'}"
        )
    elif consensus == LOCAL_DIFFERS:
        combined.reason = f"the local build differs from what {', '.join(differing)} signed" + (
            f" ({deciding.reason})" if deciding.reason else ""
        )
    elif consensus == ALL_AGREE and status in (
        Status.reproducible,
        Status.equal_modulo_store_paths,
    ):
        agreeing = [v.cache for v in verdicts if v.status in SIGNED]
        combined.reason = f"{len(agreeing)} of {len(verdicts)} caches signed the local NAR hash"
        combined.signed_by = sorted({k for v in verdicts for k in v.signed_by})
    return combined


def combine(
    caches: Sequence[str], results: Sequence[Sequence[PathResult]], gave_up: Sequence[str | None]
) -> tuple[list[PathResult], list[CacheSummary], list[str]]:
    """Per-cache result lists (in the same input order) -> combined results, each cache's
    summary, and the caches that signed a NarHash differing from the local build's or another
    trusted cache's."""
    lengths = {len(rs) for rs in results}
    if len(lengths) > 1:  # the engine returns input order for every cache: a bug otherwise
        raise AssertionError(f"caches returned different numbers of results: {lengths}")
    combined = [
        combine_one([(url, rs[i]) for url, rs in zip(caches, results, strict=True)])
        for i in range(len(results[0]) if results else 0)
    ]
    summaries = [
        CacheSummary(url=url, summary=Summary.of(rs), gave_up=why)
        for url, rs, why in zip(caches, results, gave_up, strict=True)
    ]
    disagreeing = [
        url
        for url in caches
        if any(
            v.cache == url and v.status == Status.differs
            for r in combined
            for v in r.per_cache or []
        )
    ]
    return combined, summaries, disagreeing
