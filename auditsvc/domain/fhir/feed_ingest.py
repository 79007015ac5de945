"""Feeding AuditEvents into the chain (ITI-20, FHIR feed option): one
resource, or a Bundle of type ``batch``, ``transaction`` or ``collection``.

Each AuditEvent is mapped (``feed.map_audit_event``), bound to the emitter
token's systems by the very check ``POST /v1/events`` makes
(``ingest.check_source_systems``: a source the token may not write as is
refused, 403 ``source_not_allowed``), prepared as ``POST /v1/events``
prepares events, and appended with one ``append_batch`` call per request:

* a lone resource, and a ``transaction``: everything is mapped and checked
  first; one refusal refuses the whole request and nothing is stored (the
  append is one call, so one transaction, for all of it);
* a ``batch`` or a ``collection`` (treated as a batch: FHIR gives a
  collection no processing rules, and feeders send them): each entry stands
  alone, refused entries get their own outcome and the others are stored,
  all in one append.

A resend of a stored AuditEvent (same identifier, or same id) maps to the
same event ids, which the append answers ``duplicate``: nothing is stored
twice, and the entry's status is 200 instead of 201.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ...runtime import AuditLog
from ..errors import Forbidden
from ..ingest import check_reporting_parties, prepare
from ..tokens import Caller
from .feed import FeedContext, FeedRefusal, MappedAuditEvent, map_audit_event
from .feed_reading import items, obj, text

__all__ = ["BUNDLE_TYPES", "EntryOutcome", "FeedAnswer", "feed_bundle", "feed_resource"]

BUNDLE_TYPES = frozenset({"batch", "transaction", "collection"})
CREATED, ALREADY_STORED = 201, 200


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """One AuditEvent's fate: ``status`` 201 (stored), 200 (every event of it
    was already stored) or the refusal's; ``event_ids`` its events (one per
    patient), ``refusal`` why it was refused."""

    status: int
    event_ids: list[UUID] = field(default_factory=list)
    refusal: FeedRefusal | None = None


@dataclass(frozen=True, slots=True)
class FeedAnswer:
    bundle_type: str | None  # None for a lone resource
    outcomes: list[EntryOutcome]


def _mapped(
    resource: Any, caller: Caller, context: FeedContext, path: str, full_url: str | None = None
) -> MappedAuditEvent:
    mapped = map_audit_event(resource, context, path, full_url)
    try:
        check_reporting_parties(mapped.events, caller.systems)
    except Forbidden:
        raise FeedRefusal(
            mapped.source_path,
            "source_not_allowed: neither the system the data came from nor the one it went to "
            "is one this token may emit for",
            "forbidden",
            403,
        ) from None
    return mapped


async def _append(
    audit: AuditLog, caller: Caller, mapped: Sequence[MappedAuditEvent], max_events: int, where: str
) -> list[EntryOutcome]:
    """Append every event of ``mapped`` in one call (one transaction); each AuditEvent's outcome."""
    events = [event for m in mapped for event in m.events]
    if not events:
        return []
    if len(events) > max_events:
        raise FeedRefusal(
            where,
            f"a request stores at most {max_events} events (one per patient); nothing was stored",
            "too-costly",
            413,
        )
    results, _ = await audit.appender.append_batch(prepare(events, audit.keys, caller.token_id))
    outcomes, at = [], 0
    for m in mapped:
        mine = results[at : at + len(m.events)]
        at += len(m.events)
        status = CREATED if any(r.status == "accepted" for r in mine) else ALREADY_STORED
        outcomes.append(EntryOutcome(status, [r.event_id for r in mine]))
    return outcomes


async def feed_resource(
    audit: AuditLog, resource: Any, caller: Caller, context: FeedContext, max_events: int
) -> EntryOutcome:
    """``POST /fhir/AuditEvent``: store one AuditEvent's events; ``FeedRefusal`` stores nothing."""
    mapped = _mapped(resource, caller, context, "AuditEvent")
    return (await _append(audit, caller, [mapped], max_events, "AuditEvent.entity"))[0]


def _entry_resource(entry: Any, path: str, bundle_type: str) -> tuple[Any, str | None]:
    """An entry's resource and ``fullUrl``, its ``request`` checked in a
    batch or transaction (POST AuditEvent)."""
    found = obj(entry, path) or {}
    if bundle_type != "collection":
        request = obj(found.get("request"), f"{path}.request", required=True) or {}
        if (text(request.get("method")) or "").upper() != "POST":
            raise FeedRefusal(
                f"{path}.request.method", "must be POST (this server only takes AuditEvents in)", "not-supported"
            )
        url = (text(request.get("url")) or "").split("?", 1)[0].rstrip("/")
        if url != "AuditEvent" and not url.endswith("/AuditEvent"):
            raise FeedRefusal(f"{path}.request.url", "must be AuditEvent", "not-supported")
    return obj(found.get("resource"), f"{path}.resource", required=True), text(found.get("fullUrl"))


async def feed_bundle(
    audit: AuditLog, bundle: Any, caller: Caller, context: FeedContext, max_events: int
) -> FeedAnswer:
    """``POST /fhir`` with a Bundle: per-entry outcomes (batch, collection),
    or all stored and every outcome a success (transaction; else the first
    refusal is raised and nothing is stored). At most ``max_events`` entries,
    and events (one per patient), in all."""
    body = obj(bundle, "Bundle", required=True) or {}
    if body.get("resourceType") != "Bundle":
        raise FeedRefusal("Bundle.resourceType", "must be Bundle (or POST a lone AuditEvent to /fhir/AuditEvent)")
    bundle_type = body.get("type")
    if bundle_type not in BUNDLE_TYPES:
        raise FeedRefusal("Bundle.type", "must be batch, transaction or collection", "not-supported")
    entries = items(body.get("entry"), "Bundle.entry")
    if len(entries) > max_events:
        raise FeedRefusal(
            "Bundle.entry", f"a Bundle holds at most {max_events} entries; nothing was stored", "too-costly", 413
        )
    mapped: list[MappedAuditEvent | FeedRefusal] = []
    for i, entry in enumerate(entries):
        path = f"Bundle.entry[{i}]"
        try:
            resource, full_url = _entry_resource(entry, path, bundle_type)
            mapped.append(_mapped(resource, caller, context, f"{path}.resource", full_url))
        except FeedRefusal as refusal:
            if bundle_type == "transaction":
                raise  # all or nothing: nothing has been appended yet
            mapped.append(refusal)
    accepted = [m for m in mapped if isinstance(m, MappedAuditEvent)]
    stored = iter(await _append(audit, caller, accepted, max_events, "Bundle.entry"))
    outcomes = [next(stored) if isinstance(m, MappedAuditEvent) else EntryOutcome(m.status, refusal=m) for m in mapped]
    return FeedAnswer(bundle_type, outcomes)
