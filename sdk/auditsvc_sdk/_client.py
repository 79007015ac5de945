"""``AuditClient``: the synchronous client, with one sender thread.

``record()`` validates and encodes on the caller's thread, stores the event
(memory queue, or the spool on disk) and returns; the sender thread, started
on first use, POSTs batches of up to ``max_batch`` events when that many are
waiting or when the oldest has waited ``flush_interval`` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx
import orjson

from ._access import AccessScope, build_access_event
from ._core import ClientCore, EventLike, encode_event, raise_for_status, run_guarded, transport_error
from ._event import Outcome

__all__ = ["AuditClient"]


def _close_at_exit(ref: weakref.ReferenceType[AuditClient]) -> None:
    client = ref()
    if client is not None:
        client.close(client.atexit_timeout)


class AuditClient(ClientCore):
    """Records PHI access events and delivers them to auditsvc in the background.

    ``url`` and ``token`` (an ``emitter`` token) name the service. Options
    (all keyword-only):

    * ``spool_dir``: keep events on disk until acknowledged (see the README's
      "Durable spool"); without it they wait in memory, lost if the process dies.
    * ``max_queue`` (100,000 events) / ``spool_max_bytes`` (1 GiB): the bound;
      ``block_timeout`` (1 s): how long ``record()`` waits at the bound before
      raising ``QueueFull`` / ``SpoolFull``.
    * ``max_batch`` (500), ``max_batch_bytes`` (1 MiB), ``flush_interval``
      (0.2 s): when a batch goes.
    * ``timeout`` (10 s) per request; ``retry``: a ``RetryPolicy``.
    * ``fsync`` (``"interval"``, ``"always"``, ``"never"``), ``fsync_interval`` (0.05 s).
    * ``dead_letter_path``: where refused events go (default
      ``<spool_dir>/dead-letter.jsonl``; without a spool, none: they are logged and counted).
    * ``defaults``: fields ``access()`` fills in when not given (``source``, ``actor``...).
    * ``atexit_timeout`` (5 s): how long the interpreter's exit may wait for delivery.
    * ``transport``: an ``httpx.BaseTransport`` (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        atexit_timeout: float = 5.0,
        **options: Any,
    ) -> None:
        super().__init__(url, token, **options)
        self._transport = transport
        self.atexit_timeout = atexit_timeout
        self._http = httpx.Client(transport=transport, **self._http_args())
        self._conditions()
        self._worker: threading.Thread | None = None
        # One callable per client: atexit.unregister() removes every
        # registration equal to its argument, and a shared function would
        # take every other client's exit flush with it.
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        if self.store.depth:
            self._start_worker()  # events left in the spool by an earlier run

    def _conditions(self) -> None:
        self._work = threading.Condition(self._lock)  # the sender waits for events
        self._space = threading.Condition(self._lock)  # record() waits at the bound
        self._progress = threading.Condition(self._lock)  # flush() waits for acknowledgements
        self._closing_event = threading.Event()

    # ---------------------------------------------------------- recording

    def record(self, event: EventLike) -> None:
        """Validate ``event`` and queue it for delivery; returns at once.

        Raises ``InvalidEvent`` (naming the field) when it does not validate,
        and ``QueueFull``/``SpoolFull`` when the bound stayed reached for
        ``block_timeout`` seconds. Never raises because of the network.
        """
        payload = encode_event(event)
        with self._lock:
            if not self._admit(payload):
                self._wait_for_room(payload)
            if self._worker is None:
                self._start_worker_locked()
            elif self._wake_worker_needed():
                self._work.notify()

    def _wait_for_room(self, payload: bytes) -> None:
        deadline = self._clock() + self.block_timeout
        self._flush_target = max(self._flush_target, self._put)  # send now, whatever the batch size
        self._start_worker_locked()
        self._work.notify()
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._full_error()
            self._space.wait(remaining)
            if self._admit(payload):
                return

    def access(self, *, failure_outcome: Outcome = Outcome.SERIOUS_FAILURE, **fields: Any) -> _Access:
        """Record an access around a block (see ``_access``)::

        with client.access(patient=[(MRN, "12345")], data_elements=["Observation"],
                           destination="fhir-patient-app"):
            bundle = fhir.search("Observation", patient=...)
        """
        for key in ("source", "destination"):
            if isinstance(fields.get(key), str):
                fields[key] = {"system_id": fields[key]}
        return _Access(self, AccessScope(build_access_event(self.defaults, fields), failure_outcome))

    # ------------------------------------------------------------- control

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything recorded so far; True when the service has
        answered for all of it within ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._put
            if self._done >= target:
                return True
            self._flush_target = max(self._flush_target, target)
            self._start_worker_locked()
            self._work.notify()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or self._worker is None:
                    return False
                self._progress.wait(remaining)
            return True

    def close(self, timeout: float | None = 5.0) -> bool:
        """Deliver what is waiting (for at most ``timeout`` seconds), stop the
        sender, release the spool. Idempotent. True when nothing was left
        undelivered; what is left stays in the spool, or is lost (and logged)
        without one."""
        with self._lock:
            if self._closed:
                return self.store.depth == 0 if self._forked_from is None else True
            self._closed = True
            self._closing = True
            self._close_deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
            self._work.notify_all()
            self._space.notify_all()
        self._closing_event.set()
        atexit.unregister(self._atexit)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(None if timeout is None else max(0.0, self._close_deadline - time.monotonic()) + 1.0)
        delivered = self.store.depth == 0
        with contextlib.suppress(Exception):
            self._report_leftovers()
        self._close_store()
        self._http.close()
        return delivered

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------- sender

    def _start_worker(self) -> None:
        with self._lock:
            self._start_worker_locked()

    def _start_worker_locked(self) -> None:
        if self._worker is not None or self._closing:
            return
        self._worker = threading.Thread(target=self._run, name="auditsvc-sender", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while (wait := self._wait_time()) > 0:
                        self._work.wait(None if wait == float("inf") else wait)
                    if self._should_stop():
                        return
                items = self._take_guarded()
                if not items:
                    if not self._pause(self.retry.initial_backoff):
                        return
                    continue
                if not self._deliver(items):
                    return
        finally:
            with self._lock:
                self._worker = None
                self._progress.notify_all()

    def _deliver(self, items: list[bytes]) -> bool:
        """Deliver one batch whole; False if closing ran out of time first."""
        delivery = self._delivery(items)
        while (body := delivery.body()) is not None:
            try:
                response = self._http.post(
                    "/v1/events",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self._request_timeout(),
                )
                delay = delivery.answered(response.status_code, response.headers, response.content)
            except httpx.TransportError as exc:
                delay = delivery.failed(type(exc).__name__)
            except Exception as exc:  # counted, logged, retried
                self._sender_failed(exc)
                delay = delivery.failed(type(exc).__name__)
            if delay > 0 and not self._pause(delay):
                return False
        with self._lock:
            run_guarded(self, lambda: self._acknowledge(len(items)))
            self._space.notify_all()
            self._progress.notify_all()
        return True

    def _pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds; close() cuts it short. False when the wait
        would end past the close deadline (give up: the events stay queued)."""
        if not self._retry_fits(delay):
            return False
        end = time.monotonic() + delay
        if self._closing_event.wait(delay):
            if not self._retry_fits(end - time.monotonic()):
                return False
            time.sleep(max(0.0, end - time.monotonic()))  # close() allows the rest of this wait
        return True

    # ---------------------------------------------------------------- fork

    def _reset_io_after_fork(self) -> None:
        self._conditions()
        self._worker = None
        # The parent's connections are the parent's: never write to them.
        self._http = httpx.Client(transport=self._transport, **self._http_args())

    # ------------------------------------------------------ direct calls

    def record_batch(self, events: Iterable[EventLike]) -> dict[str, Any]:
        """Send up to 1,000 events now, in one request, bypassing the queue;
        returns the service's answer (per-event ``accepted``/``duplicate``
        with ``seq``). For scripts and tools: raises ``InvalidEvent``,
        ``EventRejected``, ``ServiceError`` or ``TransportError``."""
        body = self._direct_batch(events)
        return self._post("/v1/events", body)

    def patient_access_report(self, system: str, value: str, **query: Any) -> dict[str, Any]:
        """The privacy officer's report for one patient identifier (needs a
        ``privacy_officer`` token); ``query`` adds ``from``, ``to``, ``limit``, ``cursor``."""
        return self._post(
            "/v1/reports/patient-access", orjson.dumps({"identifier": {"system": system, "value": value}, **query})
        )

    def _post(self, path: str, body: bytes) -> dict[str, Any]:
        try:
            response = self._http.post(path, content=body, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        return raise_for_status(response)


class _Access:
    def __init__(self, client: AuditClient, scope: AccessScope) -> None:
        self._client = client
        self._scope = scope

    def __enter__(self) -> AccessScope:
        return self._scope

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.record(self._scope.final_event(failed=exc_type is not None))
