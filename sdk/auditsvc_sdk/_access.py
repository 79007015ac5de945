"""``client.access(...)``: record an access around the code that performs it.

The event is built and validated when the block is entered (a mistake in
its fields raises before the access happens), stamped with the entry time
and, when an OpenTelemetry span is active, its trace and span ids. It is
recorded when the block ends: ``outcome`` 0 on success, ``failure_outcome``
(default 8, serious failure: the action was terminated) when the block
raises; the exception propagates unchanged.

OpenTelemetry is optional: ``opentelemetry-api`` is imported on first use,
and without it no ids are attached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ._event import Outcome, PhiAccess

__all__ = ["AccessScope", "build_access_event", "current_trace_ids"]

_otel_trace: Any = None  # the opentelemetry.trace module, False when not installed


def current_trace_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the active OpenTelemetry span as lowercase hex, or Nones."""
    global _otel_trace
    if _otel_trace is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _otel_trace = False
        else:
            _otel_trace = trace
    if _otel_trace is False:
        return None, None
    context = _otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _patient(patient: Any) -> Any:
    # A bare list of identifiers, or (system, value) pairs, is the common case.
    if isinstance(patient, Sequence) and not isinstance(patient, str | bytes):
        return {"identifiers": [{"system": i[0], "value": i[1]} if isinstance(i, tuple) else i for i in patient]}
    return patient


def build_access_event(defaults: Mapping[str, Any], fields: Mapping[str, Any]) -> PhiAccess:
    from ._core import invalid_event

    data: dict[str, Any] = {"action": "R", **defaults, **fields}
    if "patient" in data:
        data["patient"] = _patient(data["patient"])
    data.setdefault("occurred_at", datetime.now(UTC))
    if "trace_id" not in data:
        trace_id, span_id = current_trace_ids()
        if trace_id is not None:
            data["trace_id"], data["span_id"] = trace_id, span_id
    try:
        return PhiAccess.model_validate(data)
    except ValidationError as exc:
        raise invalid_event(exc) from None


class AccessScope:
    """What ``with client.access(...) as scope`` yields: the event about to be
    recorded. Set ``scope.outcome`` to record another outcome than the
    default, e.g. ``Outcome.MINOR_FAILURE`` for a partial answer."""

    def __init__(self, event: PhiAccess, failure_outcome: Outcome) -> None:
        self.event = event
        self.outcome: Outcome | None = None
        self.failure_outcome = failure_outcome

    @property
    def event_id(self) -> str:
        return str(self.event.event_id)

    def final_event(self, failed: bool) -> PhiAccess:
        if self.outcome is not None:
            outcome = Outcome(self.outcome)
        else:
            outcome = self.failure_outcome if failed else Outcome.SUCCESS
        return self.event.model_copy(update={"outcome": outcome})
