"""Delivering one batch until the service has answered for every event in it.

``Delivery`` is sans-I/O: it says what body to POST next and, given the
answer (or the connection error), how long to wait before the next attempt.
The sync and async clients drive it with their own HTTP client and their own
sleep; everything about *what* to do with an answer lives here, once.

* 200: every event is ``accepted`` or ``duplicate``; counted, done.
* connection error, 408, 429, 5xx: the same body again after a backoff
  (``Retry-After`` honoured). The events keep their ``event_id``, so a batch
  that was stored but whose answer was lost is answered ``duplicate``.
* 422 / 403 with ``refused: [{"index", "reason"}]``: those events go to the
  dead letters with the reason code (and, for ``invalid``, the fields the
  answer's ``errors`` name for them); the others are sent again at once.
  The answer's text is never parsed. (A service without ``refused`` names
  invalid events by the ``loc`` of its ``errors``, which is used likewise.)
* 413, or a batch over the service's event limit: split in halves.
* any other refusal of a batch that names no event: the events are sent one
  by one, so that only the bad ones end up in the dead letters.
* 401, 404, and 403 that refuses no event: the credential or URL is wrong, not
  the events. They are kept and retried at the longest backoff (the bounded
  queue or spool then fills and ``record()`` raises), and the condition is
  logged once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ._counters import Tally
from ._retry import RetryPolicy, is_retryable

__all__ = ["DeadLetters", "Delivery", "LogOnce", "batch_body"]

log = logging.getLogger("auditsvc_sdk")

_MISCONFIGURED = frozenset({401, 404})


def batch_body(items: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(items) + b"]}"


def event_id_of(payload: bytes) -> str:
    try:
        return str(orjson.loads(payload).get("event_id", "?"))
    except (orjson.JSONDecodeError, AttributeError):
        return "?"


class LogOnce:
    """Conditions logged when they start and when they end, not per attempt."""

    def __init__(self) -> None:
        self.active: set[str] = set()

    def start(self, key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        if key not in self.active:
            self.active.add(key)
            log.log(level, message, *args)

    def clear(self) -> None:
        if self.active:
            log.info("auditsvc is accepting events again (after: %s)", ", ".join(sorted(self.active)))
            self.active.clear()


class DeadLetters:
    """Events the service refused as invalid, appended as JSON lines
    ``{"dead_lettered_at", "status", "reason", "event"}`` to a 0600 file (they are PHI).

    Without a path the events are only counted and logged by ``event_id``:
    give the client ``dead_letter_path`` (or a ``spool_dir``) to keep them.
    """

    def __init__(self, path: str | os.PathLike[str] | None, tally: Tally) -> None:
        self.path = Path(path) if path is not None else None
        self._tally = tally
        self._lock = threading.Lock()

    def add(self, status: int, rejected: list[tuple[bytes, str]]) -> None:
        if not rejected:
            return
        ids = ", ".join(event_id_of(payload) for payload, _ in rejected[:20])
        more = f" and {len(rejected) - 20} more" if len(rejected) > 20 else ""
        if self.path is not None:
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            lines = b"".join(
                b'{"dead_lettered_at":'
                + orjson.dumps(now)
                + b',"status":'
                + str(status).encode()
                + b',"reason":'
                + orjson.dumps(reason)
                + b',"event":'
                + payload
                + b"}\n"
                for payload, reason in rejected
            )
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, lines)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            # The reason stays in the file: the service's text could quote the event.
            log.warning(
                "auditsvc refused %d event(s) as invalid (HTTP %d); moved to the dead-letter file %s: event_id %s%s",
                len(rejected), status, self.path, ids, more,
            )  # fmt: skip
        else:
            log.error(
                "auditsvc refused %d event(s) as invalid (HTTP %d) and no dead_letter_path is set, "
                "so they are discarded: event_id %s%s",
                len(rejected), status, ids, more,
            )  # fmt: skip
        self._tally.dead_lettered += len(rejected)


class Delivery:
    """One batch's way to the service; ``done`` once every event is answered for."""

    def __init__(
        self,
        items: list[bytes],
        *,
        tally: Tally,
        dead_letters: DeadLetters,
        policy: RetryPolicy,
        conditions: LogOnce,
        rng: random.Random | None = None,
    ) -> None:
        # Sub-batches still to send; the last one goes next.
        self._stack: list[list[bytes]] = [items] if items else []
        self._body: bytes | None = None
        self._attempt = 0
        self._tally = tally
        self._dead = dead_letters
        self._policy = policy
        self._conditions = conditions
        self._rng = rng or random.Random()

    @property
    def done(self) -> bool:
        return not self._stack

    def body(self) -> bytes | None:
        """The request body to POST next, or None when done."""
        if not self._stack:
            return None
        if self._body is None:
            self._body = batch_body(self._stack[-1])
        if self._attempt:
            self._tally.retried += len(self._stack[-1])
        return self._body

    def _replace_top(self, *parts: list[bytes]) -> None:
        self._stack.pop()
        self._stack.extend(part for part in reversed(parts) if part)
        self._body = None
        self._attempt = 0

    def _retry(self, retry_after: str | None = None) -> float:
        self._attempt += 1
        return self._policy.delay(self._attempt, retry_after, self._rng)

    def failed(self, reason: str) -> float:
        """The request did not get an answer (connection error, timeout)."""
        self._conditions.start("unreachable", "auditsvc unreachable (%s); events are kept and retried", reason)
        return self._retry()

    def answered(self, status: int, headers: Mapping[str, str], content: bytes) -> float:
        """The service answered; returns the seconds to wait before the next request."""
        batch = self._stack[-1]
        if status == 200:
            return self._accepted(batch, content)
        if is_retryable(status):
            self._conditions.start(f"status-{status}", "auditsvc answered %d; events are kept and retried", status)
            return self._retry(headers.get("retry-after"))
        detail, errors, refused = _error_body(content)
        bad = _bad_events(errors, refused, len(batch))
        if bad:
            self._dead.add(status, [(batch[i], reason) for i, reason in sorted(bad.items())])
            self._replace_top([item for i, item in enumerate(batch) if i not in bad])
            return 0.0
        if status in _MISCONFIGURED or status == 403:
            self._conditions.start(
                f"status-{status}",
                "auditsvc refuses this client (HTTP %d: check the URL, token and role); "
                "events are kept and retried, record() raises once the bound is reached",
                status,
                level=logging.ERROR,
            )
            return self._policy.backoff(10**6, self._rng)  # the longest backoff
        too_many = status == 422 and any(list(e.get("loc", ())) == ["events"] for e in errors)
        if len(batch) > 1 and (status == 413 or too_many):
            half = len(batch) // 2
            self._replace_top(batch[:half], batch[half:])
        elif len(batch) > 1:
            self._replace_top(*([item] for item in batch))
        else:
            self._dead.add(status, [(batch[0], detail or f"HTTP {status}")])
            self._replace_top()
        return 0.0

    def _accepted(self, batch: list[bytes], content: bytes) -> float:
        try:
            statuses = [row["status"] for row in orjson.loads(content)["results"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            statuses = []
        if len(statuses) != len(batch):
            # Not the documented answer (a proxy's page?): the events may or
            # may not be stored, and a resend is safe either way.
            self._tally.internal_errors += 1
            log.error("auditsvc answered 200 without one result per event; the batch is sent again")
            return self._retry()
        self._tally.sent += statuses.count("accepted")
        self._tally.duplicates += statuses.count("duplicate")
        self._conditions.clear()
        self._replace_top()
        return 0.0


def _error_body(content: bytes) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """An error answer's ``detail``, ``errors`` and ``refused`` (empty when absent or not the documented shape)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "", [], []
    if not isinstance(body, dict):
        return "", [], []
    errors, refused = body.get("errors"), body.get("refused")
    return (
        str(body.get("detail") or ""),
        [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
        [r for r in refused if isinstance(r, dict)] if isinstance(refused, list) else [],
    )


def _bad_events(errors: list[dict[str, Any]], refused: list[dict[str, Any]], size: int) -> dict[int, str]:
    """The events a refusal names, with the reason for each: the answer's
    ``refused`` entries (reason code, then the fields ``errors`` names for that
    event); without ``refused``, the events that ``errors`` name by ``loc``."""
    fields: dict[int, list[str]] = {}
    for error in errors:
        loc = error.get("loc")
        if not (isinstance(loc, list) and len(loc) >= 2 and loc[0] == "events" and type(loc[1]) is int):
            continue
        where = ".".join(str(part) for part in loc[2:]) or "event"
        fields.setdefault(loc[1], []).append(f"{where}: {error.get('msg', 'invalid')}")
    if not refused:
        return {index: "; ".join(found) for index, found in fields.items() if 0 <= index < size}
    bad: dict[int, str] = {}
    for entry in refused:
        index, code = entry.get("index"), entry.get("reason")
        if type(index) is not int or not 0 <= index < size:
            continue
        reason = code if isinstance(code, str) and code else "refused"
        named = fields.get(index)
        bad[index] = f"{reason}: {'; '.join(named)}" if named else reason
    return bad
