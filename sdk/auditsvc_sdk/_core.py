"""What the sync and async clients share: configuration, validation and
encoding, the store (memory queue or spool), counters, the batching decision,
fork handling, and the direct (non-queued) calls' answer handling.

Threading model: one lock guards the store's bookkeeping and the counters of
the recording side; one sender (a thread, or an asyncio task) takes a batch,
delivers it whole, and acknowledges it. ``record()`` never waits on the
network; it waits only when the bound is reached, and then at most
``block_timeout`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
from pydantic import TypeAdapter, ValidationError

from ._counters import Counters, Tally
from ._delivery import DeadLetters, Delivery, LogOnce
from ._event import NO_NUL_PATTERN, PhiAccess, new_event_id
from ._exceptions import ClientClosed, EventRejected, InvalidEvent, QueueFull, ServiceError, SpoolFull, TransportError
from ._queue import EventStore, MemoryQueue
from ._retry import RetryPolicy
from ._spool import FsyncPolicy, Spool
from ._version import __version__
from ._wire import _Event, _normalise

__all__ = ["ClientCore", "EventLike", "encode_event", "invalid_event", "raise_for_status", "to_event_json"]

log = logging.getLogger("auditsvc_sdk")

EventLike = PhiAccess | Mapping[str, Any]
MAX_BATCH = 1000
USER_AGENT = f"auditsvc-sdk/{__version__}"

# The service's own fast schema (same field types as PhiAccess, tested equal
# in tests/test_wire.py): a dict validates about a third faster than a model.
_EVENT: TypeAdapter[_Event] = TypeAdapter(_Event)


def invalid_event(exc: ValidationError) -> InvalidEvent:
    """pydantic's errors without the offending input (it may be PHI)."""
    errors = []
    for err in exc.errors():
        msg, kind = err["msg"], err["type"]
        if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_NUL_PATTERN:
            msg, kind = "must not contain NUL characters", "value_error"
        errors.append({"loc": list(err["loc"]), "msg": msg, "type": kind})
    return InvalidEvent(errors)


def to_event_json(event: EventLike) -> dict[str, Any]:
    """Validate ``event`` locally and return its JSON object, with an
    ``event_id`` assigned if it had none (raises ``InvalidEvent``)."""
    if isinstance(event, PhiAccess):
        return event.to_json()
    if not isinstance(event, Mapping):
        raise InvalidEvent([{"loc": [], "msg": "must be a PhiAccess or a mapping", "type": "type_error"}])
    try:
        return _normalise(_EVENT.validate_python(dict(event))).json  # type: ignore[arg-type]
    except ValidationError:
        pass
    # The model also takes nested model objects (``patient=Patient(...)``),
    # and its errors are the ones to report.
    try:
        return PhiAccess.model_validate(event).to_json()
    except ValidationError as exc:
        raise invalid_event(exc) from None


def encode_event(event: EventLike) -> bytes:
    """``record()``'s path: validate and encode, nothing more. A mapping is
    sent as validated, without ``to_event_json``'s normal forms (UTC ``Z``
    time, identifier dedupe, optional ``None`` dropped): the service applies
    them to what it receives, and skipping them here saves a third of the
    caller's cost. The ``event_id`` is fixed now, so a resend is a duplicate."""
    if isinstance(event, dict):
        try:
            checked = _EVENT.validate_python(event)
        except ValidationError:
            pass  # to_event_json gives the model's error (or accepts nested models)
        else:
            if "event_id" not in checked:
                checked["event_id"] = new_event_id()
            return orjson.dumps(checked, option=orjson.OPT_UTC_Z)
    return orjson.dumps(to_event_json(event))


def raise_for_status(response: httpx.Response) -> dict[str, Any]:
    """The JSON answer of a direct call, or the SDK's error for its status."""
    if response.status_code >= 400:
        detail: Any = response.text
        refused: list[dict[str, Any]] = []
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail", detail)
            if isinstance(body.get("refused"), list):
                refused = [r for r in body["refused"] if isinstance(r, dict)]
        error = EventRejected if 400 <= response.status_code < 500 else ServiceError
        raise error(response.status_code, detail, refused)
    return response.json()  # type: ignore[no-any-return]


def transport_error(exc: httpx.TransportError) -> TransportError:
    return TransportError(f"auditsvc unreachable: {type(exc).__name__}")


# Every live client, so that one fork hook can reset them all in the child.
_LIVE: weakref.WeakSet[ClientCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        try:
            client._reset_after_fork()
        except Exception:  # must never break the host's fork
            client.tally.internal_errors += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ClientCore(ABC):
    """The base of ``AuditClient`` and ``AsyncAuditClient``; only I/O differs."""

    # What ``record()`` measures ``block_timeout`` on (tests move it).
    _clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        max_queue: int = 100_000,
        spool_max_bytes: int = 1024**3,
        block_timeout: float = 1.0,
        max_batch: int = 500,
        max_batch_bytes: int = 1024**2,
        flush_interval: float = 0.2,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 0.05,
        dead_letter_path: str | os.PathLike[str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        self._timeout = timeout
        self.block_timeout = block_timeout
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.retry = retry or RetryPolicy()
        self.defaults = dict(defaults or {})
        self.tally = Tally()
        self.conditions = LogOnce()
        self.spool: Spool | None = None
        self.store: EventStore
        if spool_dir is not None:
            self.spool = Spool(spool_dir, max_bytes=spool_max_bytes, fsync=fsync, fsync_interval=fsync_interval)
            self.store = self.spool
            if dead_letter_path is None:
                dead_letter_path = self.spool.directory / "dead-letter.jsonl"
        else:
            self.store = MemoryQueue(max_queue)
        self.dead_letters = DeadLetters(dead_letter_path, self.tally)
        self._lock = threading.Lock()
        # Progress marks: flush(t) waits until ``_done`` reaches ``_put`` as it was.
        self._put = self.store.depth
        self._done = 0
        self._flush_target = 0
        self._batch_started = time.monotonic()
        self._closing = False
        self._close_deadline = math.inf
        self._closed = False
        self._forked_from: int | None = None
        self._pid = os.getpid()
        _LIVE.add(self)

    # ---------------------------------------------------------- recording

    def counters(self) -> Counters:
        """A snapshot of this client's counters."""
        return self.tally.snapshot(self.store.depth)

    def _check_usable(self) -> None:
        if self._forked_from is not None:
            raise ClientClosed(
                f"this client's spool belongs to the parent process (pid {self._forked_from}); "
                "create a new client with its own spool_dir in the child"
            )
        if self._closing:
            raise ClientClosed("record() after close()")

    def _admit(self, payload: bytes) -> bool:
        """Under the lock: store the event if it fits; True when stored."""
        self._check_usable()
        store = self.store
        if not store.has_room(len(payload)):
            return False
        store.put(payload)
        self._put += 1
        self.tally.recorded += 1
        if self.spool is not None:
            self.tally.spooled += 1
        if store.depth == 1:
            self._batch_started = time.monotonic()
        return True

    def _full_error(self) -> QueueFull:
        if self.spool is not None:
            return SpoolFull(
                f"the spool stayed at its bound for {self.block_timeout}s ({self.store.depth} events waiting): "
                "the event was NOT recorded; the service is unreachable or refusing this client"
            )
        return QueueFull(
            f"the in-memory queue stayed full for {self.block_timeout}s ({self.store.depth} events waiting): "
            "the event was NOT recorded; the service is unreachable or refusing this client"
        )

    def _wake_worker_needed(self) -> bool:
        """Under the lock, after ``_admit``: whether the sender must be woken."""
        depth = self.store.depth
        return depth == 1 or depth == self.max_batch

    # ------------------------------------------------------------ sending

    def _wait_time(self) -> float:
        """Under the lock: 0 to act now (send, or stop when closing), else
        how long the sender may sleep before the batch delay runs out."""
        if self._closing:
            return 0.0
        depth = self.store.depth
        if depth == 0:
            return math.inf
        if depth >= self.max_batch or self._flush_target > self._done:
            return 0.0
        return max(0.0, self._batch_started + self.flush_interval - time.monotonic())

    def _should_stop(self) -> bool:
        """Under the lock: closing, and nothing left or no time left."""
        return self._closing and (self.store.depth == 0 or time.monotonic() >= self._close_deadline)

    def _take(self) -> list[bytes]:
        # The spool reads files, so it is read without the lock (it is safe
        # against its writer); the memory queue is read under it.
        if self.spool is not None:
            return self.store.take(self.max_batch, self.max_batch_bytes)
        with self._lock:
            return self.store.take(self.max_batch, self.max_batch_bytes)

    def _take_guarded(self) -> list[bytes]:
        try:
            return self._take()
        except Exception as exc:  # a damaged spool must not stop the sender
            self._sender_failed(exc)
            return []

    def _delivery(self, items: list[bytes]) -> Delivery:
        return Delivery(
            items, tally=self.tally, dead_letters=self.dead_letters, policy=self.retry, conditions=self.conditions
        )

    def _acknowledge(self, count: int) -> None:
        """Under the lock: the batch was answered for whole."""
        self.store.ack(count)
        self._done += count
        if self.store.depth:
            # Events that arrived while the batch was out have waited long enough.
            self._batch_started = time.monotonic() - self.flush_interval

    def _request_timeout(self) -> float:
        if self._closing:
            return max(0.05, min(self._timeout, self._close_deadline - time.monotonic()))
        return self._timeout

    def _retry_fits(self, delay: float) -> bool:
        """Whether a retry after ``delay`` still fits in the close budget."""
        return not self._closing or time.monotonic() + delay < self._close_deadline

    def _sender_failed(self, exc: BaseException) -> None:
        self.tally.internal_errors += 1
        log.error("auditsvc sender: unexpected %s (events are kept)", type(exc).__name__, exc_info=False)

    def _report_leftovers(self) -> None:
        left = self.store.depth
        if not left:
            return
        if self.spool is not None:
            log.warning(
                "auditsvc client closed with %d events not yet acknowledged; they stay in the spool %s "
                "and the next client on it sends them",
                left, self.spool.directory,
            )  # fmt: skip
        else:
            log.error(
                "auditsvc client closed with %d events the service did not acknowledge in time; "
                "without a spool_dir they are lost",
                left,
            )

    def _close_store(self) -> None:
        if self._forked_from is None:
            self.store.close()

    # --------------------------------------------------------------- fork

    def _reset_after_fork(self) -> None:
        """In a forked child: fresh locks and no sender; the parent's events
        stay the parent's (it sends them)."""
        self._forked_from = self._pid
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.tally = Tally()
        self.dead_letters = DeadLetters(self.dead_letters.path, self.tally)
        self.conditions = LogOnce()
        if self.spool is not None:
            self.spool.forget_after_fork()
            return
        self._forked_from = None  # memory mode: the child may go on recording, into a fresh queue
        assert isinstance(self.store, MemoryQueue)
        self.store.clear()
        self._put = self._done = self._flush_target = 0
        self._reset_io_after_fork()

    @abstractmethod
    def _reset_io_after_fork(self) -> None:
        """New HTTP connections (and sender) for a forked child: the sync and
        async clients own different kinds of I/O."""

    # ------------------------------------------------------------ helpers

    def _http_args(self) -> dict[str, Any]:
        return {"base_url": self.url, "headers": self._headers, "timeout": self._timeout}

    def _direct_batch(self, events: Any) -> bytes:
        body = [to_event_json(e) for e in events]
        if not 1 <= len(body) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} events, not {len(body)}")
        return orjson.dumps({"events": body})


def run_guarded(core: ClientCore, fn: Callable[[], None]) -> None:
    """Run ``fn``; an unexpected exception is logged and counted, never raised."""
    try:
        fn()
    except Exception as exc:  # the host must not be hurt by the SDK
        core._sender_failed(exc)
