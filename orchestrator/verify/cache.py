"""Compare local store paths with what a binary cache (Hydra's) signed, or with a local rebuild.

The engine behind ``orchestrator verify``:

* ``--against-hydra``: for every path, the local NAR hash (from the store database, or recomputed
  from disk with ``--rehash``) against the ``NarHash`` of the cache's narinfo, accepted only when a
  signature by a trusted key verifies. A local copy that was itself substituted from a cache is
  refused (``not-built-locally``): comparing the cache with itself proves nothing.
* ``--pair OURS=THEIRS``: two builds of the same thing from different bootstraps differ in every
  store-path hash they embed. OURS's NAR is streamed through a rewriter that replaces each paired
  hash part by its partner (equal length, so byte-exact), then hashed and compared with THEIRS's
  NAR hash: ``equal-modulo-store-paths`` when they agree.
* ``--job``: Hydra's latest successful build of a job; its outputs are compared as above, and its
  build products' ``sha256hash`` with the same files of the local outputs.
* ``--rebuild``: ``nix build --rebuild`` (build again, compare with the existing output).

Every result is also appended to a JSON Lines file as soon as it is known, so an interrupted run
keeps what it found. ``Report`` is the stable JSON document ``--json`` prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import NixError, OrchestratorError
from orchestrator.formats.binary_cache import BinaryCache, CacheError
from orchestrator.formats.hashes import Hash, HashError, parse_hash
from orchestrator.formats.nar import NarError, dump_nar, make_writable, nar_hash, unpack_nar
from orchestrator.formats.narinfo import NarInfo, PublicKey, check_signatures
from orchestrator.formats.storepath import STORE_DIR, hash_part, store_name, store_path_of
from orchestrator.nixcli import nix_json, run_nix
from orchestrator.verify.hydra import Build
from orchestrator.verify.nardiff import DiffReport, run_diff
from orchestrator.verify.pairs import HashRewriter, Pair, pair_mapping, rewritten_nar_hash

SCHEMA_VERSION = 1


class Status(StrEnum):
    reproducible = "reproducible"
    equal_modulo_store_paths = "equal-modulo-store-paths"
    differs = "differs"
    not_in_cache = "not-in-cache"
    not_built_locally = "not-built-locally"
    untrusted = "untrusted"
    error = "error"


GOOD = {Status.reproducible, Status.equal_modulo_store_paths}
INCONCLUSIVE = {Status.not_in_cache, Status.not_built_locally, Status.untrusted, Status.error}
FAILING = {Status.untrusted, Status.error}

EXIT_OK = 0
EXIT_DIFFERS = 1
EXIT_UNTRUSTED_OR_ERROR = 2


# --------------------------------------------------------------------------------------------
# Models


class LocalPath(BaseModel):
    """What the local store says about a path (``nix path-info --json``)."""

    model_config = ConfigDict(frozen=True)

    path: str
    valid: bool
    nar_hash: Hash | None = None
    nar_size: int | None = None
    references: list[str] = Field(default_factory=list)
    deriver: str | None = None
    ultimate: bool = False
    signatures: list[str] = Field(default_factory=list)
    ca: str | None = None
    installable: str | None = None  # the TARGET the user named, when not a store path

    @property
    def origin(self) -> Literal["built", "added", "substituted", "missing"]:
        """``built``: Nix built it here (``ultimate``). ``added``: content-addressed and added
        here (a source; its content is pinned by its hash). ``substituted``: copied from a
        cache, so comparing it with that cache proves nothing."""
        if not self.valid:
            return "missing"
        if self.ultimate:
            return "built"
        if self.ca and not self.signatures:
            return "added"
        return "substituted"

    @classmethod
    def from_path_info(cls, entry: dict[str, Any], installable: str | None = None) -> LocalPath:
        if entry.get("valid") is False:
            return cls(path=entry["path"], valid=False, installable=installable)
        return cls(
            path=entry["path"],
            valid=True,
            nar_hash=parse_hash(entry["narHash"]),
            nar_size=int(entry["narSize"]),
            references=list(entry.get("references") or []),
            deriver=entry.get("deriver"),
            ultimate=bool(entry.get("ultimate", False)),
            signatures=list(entry.get("signatures") or []),
            ca=entry.get("ca"),
            installable=installable,
        )


class PathResult(BaseModel):
    """The verdict on one store path (or one Hydra build product)."""

    kind: Literal["path", "pair", "product", "rebuild"] = "path"
    path: str
    status: Status
    theirs: str | None = None  # pair partner, Hydra product/output, or the .check path
    reason: str | None = None
    hint: str | None = None
    local_nar_hash: str | None = None  # sha256:<nix32>
    local_nar_size: int | None = None
    remote_nar_hash: str | None = None
    remote_nar_size: int | None = None
    signed_by: list[str] = Field(default_factory=list)
    narinfo_url: str | None = None
    rewrites: int | None = None  # hash occurrences rewritten (pairs)
    seconds: float | None = None
    diff: DiffReport | None = None


class Summary(BaseModel):
    total: int = 0
    reproducible: int = 0
    equal_modulo_store_paths: int = 0
    differs: int = 0
    not_in_cache: int = 0
    not_built_locally: int = 0
    untrusted: int = 0
    error: int = 0
    inconclusive: int = 0
    exit_code: int = 0

    @classmethod
    def of(cls, results: Iterable[PathResult], *, strict: bool = False) -> Summary:
        s = cls()
        for r in results:
            s.total += 1
            field = r.status.value.replace("-", "_")
            setattr(s, field, getattr(s, field) + 1)
        s.inconclusive = s.not_in_cache + s.not_built_locally + s.untrusted + s.error
        if s.untrusted or s.error:
            s.exit_code = EXIT_UNTRUSTED_OR_ERROR
        elif s.differs:
            s.exit_code = EXIT_DIFFERS
        elif strict and s.inconclusive:
            s.exit_code = EXIT_UNTRUSTED_OR_ERROR
        return s

    def line(self) -> str:
        """``N paths: X reproducible, Y differ, Z inconclusive`` (as ``guix challenge``)."""
        good = self.reproducible + self.equal_modulo_store_paths
        noun = "path" if self.total == 1 else "paths"
        text = f"{self.total} {noun}: {good} reproducible, {self.differs} differ, "
        text += f"{self.inconclusive} inconclusive"
        details = []
        if self.equal_modulo_store_paths:
            details.append(f"{self.equal_modulo_store_paths} equal modulo store paths")
        for name in ("not_in_cache", "not_built_locally", "untrusted", "error"):
            n = getattr(self, name)
            if n:
                details.append(f"{n} {name.replace('_', '-')}")
        if details:
            text += " (" + ", ".join(details) + ")"
        return text


class Report(BaseModel):
    """The document ``verify --json`` prints (schema version 1; fields are only ever added)."""

    schema_version: int = SCHEMA_VERSION
    mode: Literal["against-hydra", "rebuild"]
    cache: str | None = None
    hydra: str | None = None
    job: str | None = None
    hydra_build: int | None = None
    trusted_keys: list[str] = Field(default_factory=list)
    started: str
    finished: str | None = None
    complete: bool = False
    results: list[PathResult] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def report_schema() -> dict[str, Any]:
    return Report.model_json_schema()


# --------------------------------------------------------------------------------------------
# Incremental results (JSON Lines)


class ResultsFile:
    """Appends ``{"event": "start"|"result"|"end", ...}`` lines, flushed one by one."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._fh: IO[str] | None = None

    def start(self, report: Report) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        head = report.model_dump(mode="json", exclude={"results", "summary"})
        self._write({"event": "start", **head})

    def result(self, result: PathResult) -> None:
        self._write({"event": "result", **result.model_dump(mode="json")})

    def end(self, report: Report) -> None:
        self._write(
            {
                "event": "end",
                "finished": report.finished,
                "summary": report.summary.model_dump(mode="json"),
            }
        )
        self.close()

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fh is None:
            if self.path is None or not self.path.exists():
                return
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_results(path: str | os.PathLike[str]) -> Report:
    """Read a results file back, complete or cut short (a torn last line is dropped)."""
    head: dict[str, Any] | None = None
    results: list[PathResult] = []
    end: dict[str, Any] | None = None
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break  # torn write of an interrupted run
            try:
                obj = json.loads(line)
                event = obj.pop("event")
                if event == "start":
                    head = obj
                elif event == "result":
                    results.append(PathResult.model_validate(obj))
                elif event == "end":
                    end = obj
            except (ValueError, KeyError, ValidationError) as exc:
                raise OrchestratorError(
                    f"bad results line: {exc}", file=str(path), line=lineno
                ) from None
    if head is None:
        raise OrchestratorError("results file has no start line", file=str(path))
    report = Report.model_validate({**head, "results": [r.model_dump() for r in results]})
    report.summary = Summary.of(report.results)
    if end is not None:
        report.complete = True
        report.finished = end.get("finished")
    return report


# --------------------------------------------------------------------------------------------
# Local store


def query_local(
    targets: Sequence[str], *, closure: bool = False, store_dir: str = STORE_DIR
) -> list[LocalPath]:
    """Resolve TARGETs (store paths or installables) to local path info, in order, unique.

    With ``closure`` the runtime closure of every valid path is added."""
    found: dict[str, LocalPath] = {}
    store_paths = []
    for t in targets:
        sp = store_path_of(t, store_dir)
        if sp is not None:
            store_paths.append(sp)
            continue
        for entry in nix_json(["path-info", t]):
            info = LocalPath.from_path_info(entry, installable=t)
            found.setdefault(info.path, info)
    if store_paths:
        wanted = list(dict.fromkeys(store_paths))
        answers = {e["path"]: e for e in nix_json(["path-info", *wanted])}
        for sp in wanted:  # nix sorts its answer; keep the user's order
            info = LocalPath.from_path_info(answers.get(sp, {"path": sp, "valid": False}))
            found.setdefault(info.path, info)
    if closure:
        valid = [p for p, i in found.items() if i.valid]
        if valid:
            for entry in nix_json(["path-info", "--recursive", *valid]):
                info = LocalPath.from_path_info(entry)
                found.setdefault(info.path, info)
    return list(found.values())


# --------------------------------------------------------------------------------------------
# The engine


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
                kind=kind,  # type: ignore[arg-type]
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
                kind=kind,  # type: ignore[arg-type]
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
        assert local.nar_hash is not None and local.nar_size is not None
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
                    await asyncio.to_thread(_unpack_rewritten, ours, mapping, ours_tree)
                return await asyncio.to_thread(
                    run_diff, ours_tree, theirs_tree, tool=self.diff_tool
                )
            except (OrchestratorError, NarError, OSError) as exc:
                return DiffReport(tool="builtin", error=str(exc))
            finally:
                make_writable(tmp)
                shutil.rmtree(tmp, ignore_errors=True)

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
            if not os.path.isfile(local_file):
                result.status = Status.differs
                result.reason = "Hydra's build product has no counterpart in the local output"
                return self._emit(result, started)
            async with self._cpu:
                digest = await asyncio.to_thread(_sha256_file, local_file)
            result.local_nar_hash = f"sha256:{digest.hex()}"
            result.local_nar_size = os.path.getsize(local_file)
            if digest == expected.digest:
                result.status = Status.reproducible
                result.reason = "file sha256 equals the build product's sha256hash on Hydra"
            else:
                result.status = Status.differs
                result.reason = "file sha256 differs from the build product's sha256hash on Hydra"
        except (OrchestratorError, HashError, OSError) as exc:
            result.status, result.reason = Status.error, str(exc)
        return self._emit(result, started)


def _sha256_file(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 21)
        view = memoryview(buf)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.digest()


def _unpack_rewritten(path: str, mapping: dict[str, str], dest: Path) -> None:
    out = io.BytesIO()
    rw = HashRewriter(mapping, out.write)
    dump_nar(path, rw.write)
    rw.close()
    out.seek(0)
    unpack_nar(out, dest)


# --------------------------------------------------------------------------------------------
# Hydra jobs


class HydraPlan(BaseModel):
    """What a ``--job`` run compares: paths against the cache, pairs, and build products."""

    direct: list[str] = Field(default_factory=list)  # local path == Hydra's output path
    pairs: list[Pair] = Field(default_factory=list)  # ours -> Hydra's output path
    products: list[tuple[str, str, str, str]] = Field(default_factory=list)
    # (local file, owner local path, Hydra product path, sha256hash)
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
                plan.products.append((local_file, ours, product.path, product.sha256hash))
                break
    return plan


# --------------------------------------------------------------------------------------------
# Running


async def verify_against_cache(
    verifier: Verifier,
    locals_: Sequence[LocalPath],
    pairs: Sequence[Pair] = (),
    pair_locals: dict[str, LocalPath] | None = None,
    products: Sequence[tuple[str, str, str, str]] = (),
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
    for local_file, owner, product_path, sha in products:
        owner_info = by_path.get(owner) or LocalPath(path=owner, valid=False)
        tasks.append(verifier.check_product(local_file, owner_info, product_path, sha, hydra_url))
    return list(await asyncio.gather(*tasks))


class RebuildOutcome(BaseModel):
    outputs: list[str]
    returncode: int
    stderr: str


def rebuild_target(
    target: str, *, keep_failed: bool, sandbox: bool | None = None
) -> list[PathResult]:
    """``nix build`` (if needed) then ``nix build --rebuild``; one result per output path."""
    started = time.monotonic()
    installable = target
    sp = store_path_of(target)
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
