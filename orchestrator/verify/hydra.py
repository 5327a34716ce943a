"""Client for Hydra's JSON API (``Accept: application/json``).

Real answers vary between Hydra versions: fields may be null or missing, booleans are 0/1, and
``/job/<project>/<jobset>/<job>/latest`` answers with a 302 redirect to ``/build/<id>``. The
models below accept all of that and normalise it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.errors import OrchestratorError
from orchestrator.formats.binary_cache import request_deadline
from orchestrator.formats.retry import (
    TransientError,
    is_transient_status,
    parse_retry_after,
    retrying,
)
from orchestrator.formats.url_credentials import split_url

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
        # json.loads reads NaN and Infinity; NaN != 0 would make an unfinished build "finished"
        if v in (0, 1):
            return v == 1
        raise ValueError(f"not a 0/1 flag: {v!r}")
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


def parse_build(data: Any, *, source: str = "<hydra>") -> Build:
    try:
        return Build.model_validate(data)
    except ValidationError as exc:
        raise HydraError(f"not a Hydra build: {_first_error(exc)}", file=source) from None


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class HydraClient:
    """Synchronous client: a verify run asks Hydra a handful of questions, not thousands.

    Proxies come from the environment (httpx reads ``http_proxy``, ``https_proxy``,
    ``all_proxy`` and ``no_proxy``); failures that may pass are retried with the project's
    policy (``retry.py``: backoff with jitter, ``Retry-After`` honoured); an answer larger than
    ``JSON_MAX`` is refused before it is read whole."""

    JSON_MAX = 16 << 20

    def __init__(
        self,
        url: str = DEFAULT_HYDRA,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        where = split_url(url.rstrip("/"))
        self.url = where.shown  # messages show this: never a password
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        try:
            self._client = httpx.Client(
                base_url=where.bare,
                auth=httpx.BasicAuth(*where.auth) if where.auth is not None else None,
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
                headers={"Accept": "application/json", "User-Agent": "orchestrator-verify"},
            )
        except (ImportError, ValueError) as exc:  # e.g. a socks5:// proxy without socksio
            raise HydraError(
                f"cannot reach {self.url} through the proxy the environment names: {exc}",
                hint="check http_proxy/https_proxy/all_proxy and no_proxy",
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(self, rel: str) -> Any:
        tries = 0
        try:
            for attempt in retrying(self.retries, self.backoff):
                with attempt:
                    tries += 1
                    return self._attempt(rel)
        except TransientError as exc:
            s = "s" if tries > 1 else ""
            raise HydraError(f"{self.url}{rel}: {exc} (after {tries} attempt{s})") from None
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _attempt(self, rel: str) -> Any:
        try:
            with self._client.stream("GET", rel) as resp:
                status = resp.status_code
                if is_transient_status(status):
                    raise TransientError(
                        f"HTTP {status}",
                        retry_after=parse_retry_after(resp.headers.get("retry-after")),
                    )
                if status == 404:
                    raise HydraError(f"{self.url}{rel}: not found (HTTP 404)")
                if status != 200:
                    raise HydraError(f"{self.url}{rel}: HTTP {status}")
                body = self._read_bounded(resp, rel)
                ctype = resp.headers.get("content-type", "?")
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        except (ValueError, UnicodeError) as exc:  # a malformed answer httpx let through
            raise TransientError(f"malformed answer: {exc}") from None
        try:
            return json.loads(body, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            raise HydraError(
                f"{self.url}{rel}: answer is not JSON (content-type {ctype})",
                hint="is this a Hydra server? the API needs Accept: application/json",
            ) from None

    def _read_bounded(self, resp: httpx.Response, rel: str) -> bytes:
        length = resp.headers.get("content-length", "")
        too_large = HydraError(f"{self.url}{rel}: answer larger than {self.JSON_MAX} bytes")
        if re.fullmatch(r"[0-9]{1,18}", length) and int(length) > self.JSON_MAX:
            raise too_large
        # one deadline for the whole answer (each read is bounded by the timeout): a server
        # that trickles a byte at a time is cut off at it
        budget = request_deadline(self.timeout, self.JSON_MAX)
        deadline = time.monotonic() + budget
        buf = bytearray()
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > self.JSON_MAX:
                raise too_large
            if time.monotonic() > deadline:
                raise TransientError(f"no complete answer within {budget:.0f} s")
        return bytes(buf)

    def build(self, build_id: int) -> Build:
        return parse_build(
            self.get_json(f"/build/{build_id}"), source=f"{self.url}/build/{build_id}"
        )

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
