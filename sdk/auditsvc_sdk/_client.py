"""A simple synchronous client: each call is one HTTP request.

The batching, spooling client that never loses an event builds on this
module's request/response handling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from ._event import PhiAccess
from ._exceptions import EventRejected, ServiceError, TransportError

__all__ = ["AuditClient", "EventLike", "to_event_json"]

EventLike = PhiAccess | Mapping[str, Any]
MAX_BATCH = 1000


def to_event_json(event: EventLike) -> dict[str, Any]:
    """Validate ``event`` locally and return its JSON shape (raises
    ``pydantic.ValidationError`` naming the bad field)."""
    if not isinstance(event, PhiAccess):
        event = PhiAccess.model_validate(event)
    return event.to_json()


class AuditClient:
    """Sends PHI access events to auditsvc.

    ``record()`` and ``record_batch()`` return the service's per-event
    results (``accepted`` or ``duplicate`` with its ``seq``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "auditsvc-sdk/0.1"},
            timeout=timeout,
            transport=transport,
        )

    def record(self, event: EventLike) -> dict[str, Any]:
        """Send one event; returns its result row."""
        return self.record_batch([event])["results"][0]  # type: ignore[no-any-return]

    def record_batch(self, events: Iterable[EventLike]) -> dict[str, Any]:
        """Send up to 1,000 events in one request, accepted or rejected whole."""
        body = [to_event_json(e) for e in events]
        if not 1 <= len(body) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} events, not {len(body)}")
        return self._post("/v1/events", {"events": body})

    def patient_access_report(self, system: str, value: str, **query: Any) -> dict[str, Any]:
        """The privacy officer's report for one patient identifier."""
        return self._post("/v1/reports/patient-access", {"identifier": {"system": system, "value": value}, **query})

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise TransportError(f"auditsvc unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            error = EventRejected if 400 <= response.status_code < 500 else ServiceError
            raise error(response.status_code, detail)
        return response.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
