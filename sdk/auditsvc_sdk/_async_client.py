"""``AsyncAuditClient``: the same client for asyncio code; the sender is a task.

Use it from one event loop. ``await client.record(event)`` does not touch
the network: it validates, stores (a spool write is one ``write()`` on the
loop's thread, plus ``fdatasync`` with ``fsync="always"``) and returns; it
awaits only at the bound, for at most ``block_timeout``. Close it with
``await client.close()`` or ``async with``: at interpreter exit there is no
loop left to send on, so events not yet sent stay in the spool (or, without
one, are reported lost in the log).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
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

__all__ = ["AsyncAuditClient"]


def _report_at_exit(ref: weakref.ReferenceType[AsyncAuditClient]) -> None:
    client = ref()
    if client is not None and not client._closed:
        with contextlib.suppress(Exception):
            client._report_leftovers()


class AsyncAuditClient(ClientCore):
    """Records PHI access events from asyncio code; options as ``AuditClient``,
    with ``transport`` an ``httpx.AsyncBaseTransport``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, token, **options)
        self._transport = transport
        self._http = httpx.AsyncClient(transport=transport, **self._http_args())
        self._events()
        self._task: asyncio.Task[None] | None = None
        # One callable per client (see AuditClient): unregistering it on
        # close() leaves every other client's exit report in place.
        self._atexit = functools.partial(_report_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        if self.store.depth:
            # Events left in the spool by an earlier run go out now when a
            # loop is running; otherwise on entering ``async with``, or at
            # the first record() or flush().
            with contextlib.suppress(RuntimeError):
                self._ensure_task()

    def _events(self) -> None:
        # Set by the recording side, cleared by the waiter before it checks
        # its condition: all on one loop, so no wake-up is lost.
        self._work = asyncio.Event()
        self._space = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing_event = asyncio.Event()

    # ---------------------------------------------------------- recording

    async def record(self, event: EventLike) -> None:
        """Validate ``event`` and queue it for delivery (see ``AuditClient.record``)."""
        payload = encode_event(event)
        with self._lock:
            stored = self._admit(payload)
            wake = stored and self._wake_worker_needed()
        if not stored:
            await self._wait_for_room(payload)
            wake = True
        self._ensure_task()
        if wake:
            self._work.set()

    async def _wait_for_room(self, payload: bytes) -> None:
        deadline = self._clock() + self.block_timeout
        with self._lock:
            self._flush_target = max(self._flush_target, self._put)
        self._ensure_task()
        self._work.set()
        while True:
            self._space.clear()
            with self._lock:
                if self._admit(payload):
                    return
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._full_error()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._space.wait(), remaining)

    def access(self, *, failure_outcome: Outcome = Outcome.SERIOUS_FAILURE, **fields: Any) -> _AsyncAccess:
        """``async with client.access(...)``: as ``AuditClient.access``."""
        for key in ("source", "destination"):
            if isinstance(fields.get(key), str):
                fields[key] = {"system_id": fields[key]}
        return _AsyncAccess(self, AccessScope(build_access_event(self.defaults, fields), failure_outcome))

    # ------------------------------------------------------------- control

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - the sync client's signature
        """As ``AuditClient.flush``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._put
            if self._done >= target:
                return True
            self._flush_target = max(self._flush_target, target)
        self._ensure_task()
        self._work.set()
        while True:
            self._progress.clear()
            if self._done >= target:
                return True
            if self._task is None or self._task.done():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    async def close(self, timeout: float | None = 5.0) -> bool:  # noqa: ASYNC109 - the sync client's signature
        """As ``AuditClient.close``."""
        if self._closed:
            return self.store.depth == 0
        with self._lock:
            self._closed = True
            self._closing = True
            self._close_deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        self._closing_event.set()
        self._work.set()
        self._space.set()
        atexit.unregister(self._atexit)
        task = self._task
        if task is not None and not task.done():
            budget = None if timeout is None else max(0.0, self._close_deadline - time.monotonic()) + 1.0
            try:
                await asyncio.wait_for(asyncio.shield(task), budget)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        delivered = self.store.depth == 0
        with contextlib.suppress(Exception):
            self._report_leftovers()
        self._close_store()
        await self._http.aclose()
        return delivered

    async def __aenter__(self) -> AsyncAuditClient:
        if self.store.depth:
            self._ensure_task()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -------------------------------------------------------------- sender

    def _ensure_task(self) -> None:
        if (self._task is None or self._task.done()) and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="auditsvc-sender")

    async def _run(self) -> None:
        try:
            while True:
                while True:
                    self._work.clear()
                    with self._lock:
                        wait = self._wait_time()
                        stop = wait == 0 and self._should_stop()
                    if wait == 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._work.wait(), None if wait == float("inf") else wait)
                if stop:
                    return
                items = self._take_guarded()
                if not items:
                    if not await self._pause(self.retry.initial_backoff):
                        return
                    continue
                if not await self._deliver(items):
                    return
        finally:
            self._progress.set()

    async def _deliver(self, items: list[bytes]) -> bool:
        delivery = self._delivery(items)
        while (body := delivery.body()) is not None:
            try:
                response = await self._http.post(
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
            if delay > 0 and not await self._pause(delay):
                return False
        with self._lock:
            run_guarded(self, lambda: self._acknowledge(len(items)))
        self._space.set()
        self._progress.set()
        return True

    async def _pause(self, delay: float) -> bool:
        if not self._retry_fits(delay):
            return False
        end = time.monotonic() + delay
        try:
            await asyncio.wait_for(self._closing_event.wait(), delay)
        except TimeoutError:
            return True
        if not self._retry_fits(end - time.monotonic()):
            return False
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        return True

    def _reset_io_after_fork(self) -> None:
        self._events()
        self._task = None
        self._http = httpx.AsyncClient(transport=self._transport, **self._http_args())

    # ------------------------------------------------------ direct calls

    async def record_batch(self, events: Iterable[EventLike]) -> dict[str, Any]:
        """As ``AuditClient.record_batch``."""
        return await self._post("/v1/events", self._direct_batch(events))

    async def patient_access_report(self, system: str, value: str, **query: Any) -> dict[str, Any]:
        """As ``AuditClient.patient_access_report``."""
        body = orjson.dumps({"identifier": {"system": system, "value": value}, **query})
        return await self._post("/v1/reports/patient-access", body)

    async def _post(self, path: str, body: bytes) -> dict[str, Any]:
        try:
            response = await self._http.post(path, content=body, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        return raise_for_status(response)


class _AsyncAccess:
    def __init__(self, client: AsyncAuditClient, scope: AccessScope) -> None:
        self._client = client
        self._scope = scope

    async def __aenter__(self) -> AccessScope:
        return self._scope

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.record(self._scope.final_event(failed=exc_type is not None))
