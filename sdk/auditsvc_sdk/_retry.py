"""When to send a batch again, and after how long.

Retried: connection errors and timeouts, 408, 429 and every 5xx. The wait is
exponential backoff with jitter, or the service's ``Retry-After`` (seconds or
an HTTP date) capped at ``max_retry_after``. There is no overall give-up
deadline while the client runs: an audit event waits out an outage of hours
(in the spool, or the bounded memory queue). ``close()`` interrupts the wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "is_retryable", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or
    None when absent or unreadable. A date in the past means 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff ``initial * multiplier**(attempt-1)``, at most ``max_backoff``,
    of which a random share up to ``jitter`` is taken off (so that clients
    restarted together do not retry in lockstep)."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` (1-based)."""
        exponent = min(max(0, attempt - 1), 64)  # past that the cap applies anyway; floats would overflow
        base = min(self.max_backoff, self.initial_backoff * self.multiplier**exponent)
        return base * (1.0 - self.jitter * (rng or random).random())

    def delay(self, attempt: int, retry_after: str | None = None, rng: random.Random | None = None) -> float:
        """``Retry-After`` when the service sent one (capped), else the backoff."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after)
        return self.backoff(attempt, rng)
