"""Every read of the audit log is itself an event in the same chain.

A report, an event read or an export appends an ``audit-log-query`` event:
the reader as actor, the patient as subject (for an export, the export
itself: it reads every patient in its range), auditsvc as source and the
reader's role as destination. It is appended (and committed) before the
answer leaves the service or the package is written, so no read of PHI goes
unrecorded.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from auditsvc_sdk import Identifier, PhiAccess, genesis_hash
from auditsvc_sdk.wire import wire_event

from ..keys import ServerKeys
from ..runtime import AuditLog
from ..store.append import append_group
from ..store.session import Connection
from .append_types import PendingBatch
from .ingest import prepare
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

READ_EVENT_TYPE = "audit-log-query"


def read_event(
    identifiers: Sequence[Identifier],
    *,
    actor: dict[str, Any],
    destination: str,
    data_elements: list[str],
    attributes: Mapping[str, str | int | bool],
) -> PhiAccess:
    """The ``audit-log-query`` event for one read."""
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="E",
        event_type=READ_EVENT_TYPE,
        patient={"identifiers": list(identifiers)},
        data_elements=data_elements,
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": destination},
        actor=actor,
        outcome=0,
        attributes=dict(attributes),
    )


async def record_read(
    audit: AuditLog,
    reader: Caller,
    identifiers: Sequence[Identifier],
    *,
    data_elements: list[str],
    detail: str,
) -> None:
    event = read_event(
        identifiers,
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        destination=f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
        data_elements=data_elements,
        attributes={"query": detail},
    )
    await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))


EXPORT_SUBJECT_SYSTEM = "urn:auditsvc:evidence-export"
"""An export reads every patient in its range; its event names the export
itself (a fresh id per export) as the subject, so exports never link
patients together, and its range in ``attributes``."""


def _export_event(actor: dict[str, Any], destination: str, from_seq: int, to_seq: int | None) -> tuple[str, PhiAccess]:
    export_id = str(uuid.uuid4())
    event = read_event(
        [Identifier(system=EXPORT_SUBJECT_SYSTEM, value=export_id)],
        actor=actor,
        destination=destination,
        data_elements=["AuditEvent"],
        attributes={
            "query": "evidence-export",
            "from_seq": str(from_seq),
            "to_seq": "newest" if to_seq is None else str(to_seq),
        },
    )
    return export_id, event


async def record_export(
    conn: Connection,
    log_id: int,
    log_name: str,
    keys: ServerKeys,
    *,
    from_seq: int,
    to_seq: int | None,
) -> tuple[str, int]:
    """Append the ``audit-log-query`` event for an evidence export run from the
    command line (the operating-system user as actor), before the package is
    written. Returns the export's id and the event's seq."""
    user = getpass.getuser()
    export_id, event = _export_event(
        {"id": f"cli:{user}@{socket.gethostname()}", "type": "user", "role": "operator", "name": user},
        f"{SERVICE_SYSTEM_ID}:export",
        from_seq,
        to_seq,
    )
    batch = PendingBatch(prepare([wire_event(event)], keys, "cli"))
    [[result]], _ = await append_group(conn, log_id, genesis_hash(log_name), [batch])
    return export_id, result.seq


async def record_export_by(audit: AuditLog, reader: Caller, *, from_seq: int, to_seq: int | None) -> tuple[str, int]:
    """The same for an export a signed-in person asked for (the console's
    auditor page): the reader as actor. Returns the export's id and seq."""
    export_id, event = _export_event(
        {"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        f"{SERVICE_SYSTEM_ID}:{reader.role.value}",
        from_seq,
        to_seq,
    )
    [result], _ = await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))
    return export_id, result.seq
