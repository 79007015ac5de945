"""Per-credential rate limits: a token bucket per caller, answered 429.

Every authenticated request takes one token from its caller's bucket (the
API token's id, or ``oidc:<sub>``); requests, not events, are counted, so an
SDK sending 500 events a request costs one. Emitters and humans have their
own rate and burst (``AUDITSVC_RATE_LIMIT_*``); a rate of 0 turns that
limit off. A request refused is answered ``429`` with ``Retry-After``
(whole seconds until a token is back) and a JSON ``detail``; the SDK waits
that long and sends the same batch again.

A request that fails authentication is answered 401 before it reaches a
bucket, so nobody can spend another credential's budget.

The buckets live in this process's memory: with N worker processes or
replicas, one credential may make up to N times the configured rate in
all. That bounds what one runaway or stolen credential does to one process,
which is the point; an exact cluster-wide limit would need a shared store
on every request's path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..domain.tokens import Caller, Role

if TYPE_CHECKING:
    from ..settings import Settings

# Idle buckets (full again) are swept once this many exist.
SWEEP_AT = 10_000


class RateLimited(Exception):
    """A credential's bucket is empty; ``retry_after`` whole seconds until it is not."""

    def __init__(self, retry_after: int, rate: float, burst: int) -> None:
        super().__init__(f"rate limit exceeded: retry after {retry_after} s")
        self.retry_after = retry_after
        self.rate = rate
        self.burst = burst


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second, one per key."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when admitted, else the seconds until one is back."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= SWEEP_AT:
                self._sweep(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled: a new bucket starts full anyway."""
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Requests per second and burst, for emitters and for humans (0/s: no limit)."""

    emitter_per_second: float
    emitter_burst: int
    human_per_second: float
    human_burst: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitConfig:
        return cls(
            emitter_per_second=settings.rate_limit_emitter_per_second,
            emitter_burst=settings.rate_limit_emitter_burst,
            human_per_second=settings.rate_limit_human_per_second,
            human_burst=settings.rate_limit_human_burst,
        )


class RateLimits:
    """The emitter and the human limits of one process."""

    def __init__(self, config: RateLimitConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.emitter = self._bucket(config.emitter_per_second, config.emitter_burst, clock)
        self.human = self._bucket(config.human_per_second, config.human_burst, clock)

    @staticmethod
    def _bucket(rate: float, burst: int, clock: Callable[[], float]) -> TokenBucket | None:
        return TokenBucket(rate, burst, clock=clock) if rate > 0 else None

    def admit(self, caller: Caller) -> None:
        """Count one request of ``caller``; raise ``RateLimited`` when over its limit."""
        bucket = self.emitter if caller.role is Role.EMITTER else self.human
        if bucket is None:
            return
        wait = bucket.take(caller.token_id)
        if wait > 0:
            raise RateLimited(max(1, math.ceil(wait)), bucket.rate, bucket.burst)


def install_rate_limit_handler(app: FastAPI) -> None:
    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"rate limit exceeded for this credential ({exc.rate:g} requests/s, burst {exc.burst}); "
                f"retry after {exc.retry_after} s"
            },
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
