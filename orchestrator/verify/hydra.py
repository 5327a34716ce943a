"""Client for Hydra's JSON API (``Accept: application/json``).

Real answers vary between Hydra versions: fields may be null or missing, booleans are 0/1, and
``/job/<project>/<jobset>/<job>/latest`` answers with a 302 redirect to ``/build/<id>``. The
models below accept all of that and normalise it.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import OrchestratorError

DEFAULT_HYDRA = "https://hydra.nixos.org"


class HydraError(OrchestratorError):
    """Hydra could not be reached, or answered something that is not a Hydra answer."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BuildOutput(_Lenient):
    path: str


class BuildProduct(_Lenient):
    path: str | None = None
    type: str | None = None
    subtype: str | None = None
    name: str | None = None
    defaultpath: str | None = None
    sha256hash: str | None = None
    filesize: int | None = None


def _flag(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes")
    raise ValueError(f"not a 0/1 flag: {v!r}")


class Build(_Lenient):
    id: int
    project: str | None = None
    jobset: str | None = None
    job: str | None = None
    system: str | None = None
    nixname: str | None = None
    drvpath: str | None = None
    finished: bool = False
    buildstatus: int | None = None
    priority: int | None = None
    timestamp: int | None = None
    starttime: int | None = None
    stoptime: int | None = None
    releasename: str | None = None
    jobsetevals: list[int] = Field(default_factory=list)
    buildoutputs: dict[str, BuildOutput] = Field(default_factory=dict)
    buildproducts: dict[str, BuildProduct] = Field(default_factory=dict)

    @field_validator("finished", mode="before")
    @classmethod
    def _finished(cls, v: Any) -> bool:
        return _flag(v)

    @field_validator("jobsetevals", mode="before")
    @classmethod
    def _no_evals(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("buildoutputs", "buildproducts", mode="before")
    @classmethod
    def _no_mapping(cls, v: Any) -> Any:
        return {} if v is None else v

    @property
    def succeeded(self) -> bool:
        return self.finished and self.buildstatus == 0

    @property
    def full_job(self) -> str:
        return f"{self.project}/{self.jobset}/{self.job}"


class EvalInput(_Lenient):
    type: str | None = None
    uri: str | None = None
    revision: str | None = None
    value: str | None = None
    dependency: Any = None


class Evaluation(_Lenient):
    id: int
    hasnewbuilds: bool = False
    builds: list[int] = Field(default_factory=list)
    jobsetevalinputs: dict[str, EvalInput] = Field(default_factory=dict)

    @field_validator("hasnewbuilds", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> bool:
        return _flag(v)

    @field_validator("builds", mode="before")
    @classmethod
    def _builds(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("jobsetevalinputs", mode="before")
    @classmethod
    def _inputs(cls, v: Any) -> Any:
        return {} if v is None else v


class SearchResult(_Lenient):
    builds: list[Build] = Field(default_factory=list)
    buildsdrv: list[Build] = Field(default_factory=list)
    jobsets: list[dict[str, Any]] = Field(default_factory=list)
    projects: list[dict[str, Any]] = Field(default_factory=list)


def parse_build(data: Any, *, source: str = "<hydra>") -> Build:
    try:
        return Build.model_validate(data)
    except ValidationError as exc:
        raise HydraError(f"not a Hydra build: {_first_error(exc)}", file=source) from None


def parse_eval(data: Any, *, source: str = "<hydra>") -> Evaluation:
    try:
        return Evaluation.model_validate(data)
    except ValidationError as exc:
        raise HydraError(f"not a Hydra evaluation: {_first_error(exc)}", file=source) from None


def parse_search(data: Any, *, source: str = "<hydra>") -> SearchResult:
    try:
        return SearchResult.model_validate(data)
    except ValidationError as exc:
        raise HydraError(f"not a Hydra search answer: {_first_error(exc)}", file=source) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))


def split_job(spec: str) -> tuple[str, str, str]:
    parts = spec.split("/")
    if len(parts) != 3 or not all(parts):
        raise HydraError(
            f"--job {spec!r} is not PROJECT/JOBSET/JOB",
            hint="e.g. nixos/trunk-combined/nixos.iso_minimal.x86_64-linux",
        )
    return parts[0], parts[1], parts[2]


class HydraClient:
    """Synchronous client: a verify run asks Hydra a handful of questions, not thousands."""

    def __init__(
        self,
        url: str = DEFAULT_HYDRA,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"Accept": "application/json", "User-Agent": "orchestrator-verify"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HydraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(self, rel: str) -> Any:
        last = ""
        for _attempt in range(self.retries + 1):
            try:
                resp = self._client.get(rel)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code == 404:
                raise HydraError(f"{self.url}{rel}: not found (HTTP 404)")
            if resp.status_code >= 500 or resp.status_code == 429:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise HydraError(f"{self.url}{rel}: HTTP {resp.status_code}")
            try:
                return resp.json()
            except ValueError:
                ctype = resp.headers.get("content-type", "?")
                raise HydraError(
                    f"{self.url}{rel}: answer is not JSON (content-type {ctype})",
                    hint="is this a Hydra server? the API needs Accept: application/json",
                ) from None
        raise HydraError(f"{self.url}{rel}: {last} (after {self.retries + 1} attempts)")

    def build(self, build_id: int) -> Build:
        return parse_build(
            self.get_json(f"/build/{build_id}"), source=f"{self.url}/build/{build_id}"
        )

    def evaluation(self, eval_id: int) -> Evaluation:
        return parse_eval(self.get_json(f"/eval/{eval_id}"), source=f"{self.url}/eval/{eval_id}")

    def latest(self, job: str) -> Build:
        """The latest successful build of ``PROJECT/JOBSET/JOB`` (Hydra redirects ``latest``)."""
        project, jobset, name = split_job(job)
        rel = f"/job/{project}/{jobset}/{name}/latest"
        build = parse_build(self.get_json(rel), source=f"{self.url}{rel}")
        if not build.succeeded:
            raise HydraError(
                f"{self.url}{rel} points at build {build.id}, which did not succeed "
                f"(finished={int(build.finished)}, buildstatus={build.buildstatus})"
            )
        return build
