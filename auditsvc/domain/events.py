"""Appending batches and reading single events back with their hashes."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from auditsvc_sdk import Identifier

from ..runtime import AuditLog
from ..store.events import event_by_id
from ..store.session import driver_connection
from .errors import NotFound
from .ingest import check_source_systems, parse_batch, prepare
from .read_audit import record_read
from .tokens import Caller, Role


async def ingest_batch(audit: AuditLog, body: bytes, emitter: Caller, max_events: int) -> dict[str, Any]:
    """Validate, bind to the emitter's systems, append; the answer means committed.

    The answer holds ``UUID`` objects; the route serialises it with orjson,
    which writes them as canonical lowercase text.
    """
    events = parse_batch(body, max_events)
    check_source_systems(events, emitter.systems)
    prepared = prepare(events, audit.keys, emitter.token_id)
    results, head = await audit.appender.append_batch(prepared)
    return {
        "results": [{"event_id": r.event_id, "status": r.status, "seq": r.seq} for r in results],
        "head": {"tree_size": head.tree_size, "chain_hash": head.chain_hash.hex()},
    }


async def read_event(audit: AuditLog, event_id: UUID, reader: Caller) -> dict[str, Any]:
    async with driver_connection(audit.engine) as conn:
        row = await event_by_id(conn, audit.log_id, event_id)
    if row is None:
        raise NotFound("no event with that event_id")
    record = json.loads(row.record)
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    opened = [sealer.reveal(i) for i in record.get("patient", {}).get("identifiers", [])]
    if opened:
        identifiers = [Identifier(**i) for i in opened]
        await record_read(audit, reader, identifiers, data_elements=["AuditEvent"], detail="event-read")
    answer: dict[str, Any] = {
        "record": record,
        "seq": row.seq,
        "leaf_hash": row.leaf_hash.hex(),
        "chain_hash": row.chain_hash.hex(),
    }
    if reader.role is Role.PRIVACY_OFFICER:
        # The record as stored (what the hashes cover) holds identifiers
        # sealed; a privacy officer also gets them opened.
        answer["patient_identifiers"] = opened
    return answer
