"""Compare local store paths with what a binary cache (Hydra's) signed: the engine behind
``orchestrator verify --against-hydra``.

* a path: the local NAR hash (from the store database, or recomputed from disk with
  ``--rehash``) against the ``NarHash`` of the cache's narinfo, accepted only when a signature by
  a trusted key verifies. A local copy that was itself substituted from a cache is refused
  (``not-built-locally``): comparing the cache with itself proves nothing.
* a pair OURS=THEIRS (``--pair``): two builds of the same thing from different bootstraps differ
  in every store-path hash they embed. OURS's NAR is streamed through a rewriter that replaces
  each paired hash part by its partner (equal length, so byte-exact), then hashed and compared
  with THEIRS's NAR hash: ``equal-modulo-store-paths`` when they agree.
* a Hydra build product: the file's sha256 against the product's ``sha256hash``.

Results stream into a callback as they are known (the results file), and come back in input
order.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.formats.binary_cache import BinaryCache, CacheError
from orchestrator.formats.filehash import sha256_digest
from orchestrator.formats.hashes import Hash, HashError, parse_hash
from orchestrator.formats.nar import NarError, nar_hash, remove_tree, unpack_nar
from orchestrator.formats.narinfo import NarInfo, PublicKey, check_signatures
from orchestrator.formats.storepath import hash_part
from orchestrator.verify.hydra_plan import HydraProduct, product_file
from orchestrator.verify.local_store import LocalPath
from orchestrator.verify.nardiff import DiffReport, run_diff
from orchestrator.verify.pairs import Pair, pair_mapping, rewritten_nar_hash, unpack_rewritten
from orchestrator.verify.report import PathResult, Status


class Verifier:
    """Checks local paths against one binary cache. Results stream into ``on_result``."""

    def __init__(
        self,
        cache: BinaryCache,
        trusted: Sequence[PublicKey],
        *,
        jobs: int = 8,
        rehash: bool = False,
        diff: bool = False,
        diff_tool: str = "auto",
        on_result: Callable[[PathResult], None] | None = None,
    ) -> None:
        self.cache = cache
        self.trusted = list(trusted)
        self.rehash = rehash
        self.diff = diff
        self.diff_tool = diff_tool
        self.on_result = on_result
        self._cpu = asyncio.Semaphore(max(1, jobs))

    # -- helpers ------------------------------------------------------------------------------

    def _emit(self, result: PathResult, started: float) -> PathResult:
        result.seconds = round(time.monotonic() - started, 4)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _refuse_local(self, local: LocalPath, kind: str) -> PathResult | None:
        """``not-built-locally`` for a missing or substituted local copy, else ``None``."""
        if local.origin == "missing":
            what = local.installable or local.path
            return PathResult(
                kind=kind,
                path=local.path,
                status=Status.not_built_locally,
                reason="not valid in the local store",
                hint=f"build it here first: nix build --option substitute false {what}",
            )
        if local.origin == "substituted":
            keys = sorted({s.partition(":")[0] for s in local.signatures})
            by = f" (signed by {', '.join(keys)})" if keys else ""
            drv = local.deriver or "<its .drv>"
            return PathResult(
                kind=kind,
                path=local.path,
                status=Status.not_built_locally,
                reason=f"the local copy was substituted from a binary cache{by}; comparing it "
                "with the cache proves nothing",
                hint=f"rebuild it here: orchestrator verify --rebuild {drv}, or nix store "
                f"delete {local.path} && nix build --option substitute false {drv}",
                signed_by=keys,
            )
        return None

    async def _local_hash(self, local: LocalPath) -> tuple[Hash, int]:
        assert local.nar_hash is not None
        assert local.nar_size is not None
        if not self.rehash:
            return local.nar_hash, local.nar_size
        async with self._cpu:
            digest = await asyncio.to_thread(nar_hash, local.path)
        if digest.nar_hash != local.nar_hash or digest.nar_size != local.nar_size:
            raise OrchestratorError(
                f"{local.path} on disk ({digest.nar_hash}, {digest.nar_size} bytes) does not "
                f"match the store database ({local.nar_hash}, {local.nar_size} bytes)",
                hint=f"the local copy is corrupt: nix store verify {local.path}; nix store repair",
            )
        return digest.nar_hash, digest.nar_size

    async def _trusted_narinfo(self, path: str, result: PathResult) -> NarInfo | None:
        """Fetch and check the narinfo of ``path``; on any problem fill ``result`` and return
        ``None``."""
        hp = hash_part(path)
        result.narinfo_url = f"{self.cache.url}/{hp}.narinfo"
        try:
            info = await self.cache.narinfo(hp)
        except CacheError as exc:
            result.status, result.reason = Status.error, exc.message
            return None
        except OrchestratorError as exc:  # garbled narinfo
            result.status, result.reason = Status.error, f"garbled narinfo: {exc}"
            return None
        if info is None:
            result.status = Status.not_in_cache
            result.reason = f"{self.cache.url} has no narinfo for {hp}"
            return None
        if info.store_path != path:
            result.status = Status.error
            result.reason = f"narinfo {hp}.narinfo describes {info.store_path}, not {path}"
            return None
        result.remote_nar_hash = info.nar_hash.to_nix32()
        result.remote_nar_size = info.nar_size
        sigs = check_signatures(info, self.trusted)
        if not sigs.trusted:
            result.status = Status.untrusted
            result.reason = sigs.reason()
            result.hint = "pass the cache's public key with --trusted-key NAME:KEY if you trust it"
            return None
        result.signed_by = sigs.valid_keys
        return info

    # -- one path against the cache -----------------------------------------------------------

    async def check_path(self, local: LocalPath) -> PathResult:
        started = time.monotonic()
        refused = self._refuse_local(local, "path")
        if refused is not None:
            return self._emit(refused, started)
        result = PathResult(path=local.path, status=Status.error)
        try:
            result.local_nar_hash = str(local.nar_hash)
            result.local_nar_size = local.nar_size
            info = await self._trusted_narinfo(local.path, result)
            if info is None:
                return self._emit(result, started)
            h, size = await self._local_hash(local)
            result.local_nar_hash, result.local_nar_size = h.to_nix32(), size
            if h == info.nar_hash and size == info.nar_size:
                result.status = Status.reproducible
                result.reason = (
                    f"NAR hash matches the cache's, signed by {', '.join(result.signed_by)}"
                )
            else:
                result.status = Status.differs
                result.reason = "local NAR hash differs from the cache's signed NarHash"
                result.hint = (
                    f"see what differs: orchestrator verify --against-hydra --diff {local.path}"
                )
                if self.diff:
                    result.diff = await self._diff_with_cache(local.path, {}, info)
        except (OrchestratorError, NarError, OSError) as exc:
            result.status, result.reason = Status.error, str(exc)
        return self._emit(result, started)

    async def _diff_with_cache(
        self,
        ours: str,
        mapping: dict[str, str],
        info: NarInfo | None,
        theirs_local: str | None = None,
    ) -> DiffReport:
        async with self._cpu:
            tmp = Path(tempfile.mkdtemp(prefix="orchestrator-diff-"))
            try:
                theirs_tree = tmp / "theirs"
                if theirs_local is not None:
                    theirs_tree = Path(theirs_local)
                else:
                    assert info is not None
                    nar = tmp / "theirs.nar"
                    await self.cache.fetch_nar(info, nar)
                    with open(nar, "rb") as fh:
                        await asyncio.to_thread(unpack_nar, fh, theirs_tree)
                    nar.unlink()
                ours_tree = Path(ours)
                if mapping:
                    ours_tree = tmp / "ours"
                    await asyncio.to_thread(unpack_rewritten, ours, mapping, ours_tree)
                return await asyncio.to_thread(
                    run_diff, ours_tree, theirs_tree, tool=self.diff_tool
                )
            except (OrchestratorError, NarError, OSError) as exc:
                return DiffReport(tool="builtin", error=str(exc))
            finally:  # removed on every way out, at any depth the NAR had
                await asyncio.to_thread(remove_tree, tmp)

    # -- a cross-bootstrap pair ---------------------------------------------------------------

    async def check_pair(
        self,
        ours: LocalPath,
        theirs_path: str,
        theirs_local: LocalPath | None,
        pairs: Sequence[Pair],
    ) -> PathResult:
        started = time.monotonic()
        refused = self._refuse_local(ours, "pair")
        if refused is not None:
            refused.theirs = theirs_path
            return self._emit(refused, started)
        result = PathResult(kind="pair", path=ours.path, theirs=theirs_path, status=Status.error)
        try:
            info: NarInfo | None = None
            if theirs_local is not None and theirs_local.valid:
                assert theirs_local.nar_hash is not None
                t_hash, t_size = theirs_local.nar_hash, theirs_local.nar_size
                t_refs = theirs_local.references
                result.remote_nar_hash, result.remote_nar_size = t_hash.to_nix32(), t_size
                result.signed_by = ["local-store"]
            else:
                info = await self._trusted_narinfo(theirs_path, result)
                if info is None:
                    return self._emit(result, started)
                t_hash, t_size, t_refs = info.nar_hash, info.nar_size, info.reference_paths()
            mapping = pair_mapping(
                [*pairs, Pair(ours=ours.path, theirs=theirs_path)], ours.references, t_refs
            )
            async with self._cpu:
                h, size, count = await asyncio.to_thread(rewritten_nar_hash, ours.path, mapping)
            result.local_nar_hash, result.local_nar_size = h.to_nix32(), size
            result.rewrites = count
            if h == t_hash and size == t_size:
                same = ours.path == theirs_path and count == 0
                result.status = Status.reproducible if same else Status.equal_modulo_store_paths
                result.reason = (
                    "identical NAR"
                    if same
                    else f"NARs equal after rewriting {count} store-path hash occurrence(s)"
                )
            else:
                result.status = Status.differs
                result.reason = (
                    f"NARs differ even after rewriting {count} store-path hash occurrence(s) "
                    f"through {len(mapping)} pairing(s)"
                )
                if self.diff:
                    result.diff = await self._diff_with_cache(
                        ours.path,
                        mapping,
                        info,
                        theirs_local.path
                        if theirs_local is not None and theirs_local.valid
                        else None,
                    )
        except (OrchestratorError, NarError, OSError) as exc:
            result.status, result.reason = Status.error, str(exc)
        return self._emit(result, started)

    # -- Hydra build products -----------------------------------------------------------------

    async def check_product(
        self, local_file: str, owner: LocalPath, product_path: str, sha256hash: str, where: str
    ) -> PathResult:
        started = time.monotonic()
        refused = self._refuse_local(owner, "product")
        if refused is not None:
            refused.path, refused.theirs = local_file, product_path
            return self._emit(refused, started)
        result = PathResult(
            kind="product", path=local_file, theirs=product_path, status=Status.error
        )
        try:
            expected = parse_hash(sha256hash, "sha256")
            result.remote_nar_hash = f"sha256:{expected.hex}"
            result.signed_by = [f"hydra-api:{where}"]
            try:  # resolved inside the output only: never a file of this machine
                disk = product_file(owner.path, local_file)
            except FileNotFoundError:
                result.status = Status.differs
                result.reason = "Hydra's build product has no counterpart in the local output"
                return self._emit(result, started)
            async with self._cpu:
                digest = await asyncio.to_thread(sha256_digest, disk)
            result.local_nar_hash = f"sha256:{digest.hex()}"
            result.local_nar_size = os.path.getsize(disk)
            if digest == expected.digest:
                result.status = Status.reproducible
                result.reason = "file sha256 equals the build product's sha256hash on Hydra"
            else:
                result.status = Status.differs
                result.reason = "file sha256 differs from the build product's sha256hash on Hydra"
        except (OrchestratorError, HashError, OSError) as exc:
            result.status, result.reason = Status.error, str(exc)
        return self._emit(result, started)


async def verify_against_cache(
    verifier: Verifier,
    locals_: Sequence[LocalPath],
    pairs: Sequence[Pair] = (),
    pair_locals: dict[str, LocalPath] | None = None,
    products: Sequence[HydraProduct] = (),
    hydra_url: str = "",
) -> list[PathResult]:
    """Run every check concurrently; results come back in input order."""
    pair_locals = pair_locals or {}
    by_path = {lp.path: lp for lp in locals_} | pair_locals
    tasks: list[Any] = []
    paired = {p.ours for p in pairs}
    for lp in locals_:
        if lp.path not in paired:
            tasks.append(verifier.check_path(lp))
    for p in pairs:
        ours = by_path.get(p.ours) or LocalPath(path=p.ours, valid=False)
        theirs = by_path.get(p.theirs)
        tasks.append(verifier.check_pair(ours, p.theirs, theirs, pairs))
    for product in products:
        owner = by_path.get(product.owner) or LocalPath(path=product.owner, valid=False)
        tasks.append(
            verifier.check_product(
                product.local_file, owner, product.hydra_path, product.sha256, hydra_url
            )
        )
    return list(await asyncio.gather(*tasks))
