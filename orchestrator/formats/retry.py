"""One retry policy for every HTTP client of the project (binary caches and Hydra), on tenacity.

A request that failed in a way that may pass (connection refused or reset, a timeout, HTTP 408,
425, 429 or 5xx) raises ``TransientError``; anything else is an answer and is not retried. Waits
grow exponentially with jitter, so concurrent clients do not retry in lockstep; a ``Retry-After``
header (delta-seconds or an HTTP date, as 429 and 503 answers carry it) replaces the computed
wait, capped so that one answer cannot stall a run for an hour.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type
from tenacity.stop import stop_after_attempt, stop_base

MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is waited for this long
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class TransientError(Exception):
    """A failed attempt worth trying again; ``retry_after`` is the server's wait, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES or 500 <= status < 600


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110: delta-seconds or an HTTP date);
    ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a date without a zone is taken as such
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Backoff:
    """tenacity wait: ``base * 2**(n-1)`` with jitter (x0.5 to x1.5), or the ``Retry-After``."""

    def __init__(self, base: float, *, max_retry_after: float = MAX_RETRY_AFTER) -> None:
        self.base = base
        self.max_retry_after = max_retry_after

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after)
        return self.base * 2.0 ** (state.attempt_number - 1) * (0.5 + random.random())


class _StopWhen(stop_base):
    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate()


def _stops(retries: int, give_up: Callable[[], bool] | None) -> stop_base:
    after = stop_after_attempt(max(0, retries) + 1)
    return after if give_up is None else after | _StopWhen(give_up)


def retrying(retries: int, backoff: float) -> Retrying:
    """The retry loop of synchronous clients (``for attempt in ...: with attempt: ...``)."""
    return Retrying(
        stop=_stops(retries, None),
        wait=Backoff(backoff),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )


def async_retrying(
    retries: int, backoff: float, *, give_up: Callable[[], bool] | None = None
) -> AsyncRetrying:
    """For asyncio clients; ``give_up()`` true stops retrying at once (the server is down)."""
    return AsyncRetrying(
        stop=_stops(retries, give_up),
        wait=Backoff(backoff),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )
