"""The compliance committee's report: the flow map, the BAA gaps, and what
changed since the committee's last report.

Each committee report is an event in the chain (source ``auditsvc``,
destination ``auditsvc:compliance-committee``, subject
``urn:auditsvc:report|compliance-committee``), so "since the last report"
is well defined: since that event's ``seq``. The changes are the
source -> destination pairs first seen after it (``system_pairs``), the
registry entries recorded after it (a BAA signed, renewed or ended), and
the alerts raised after it. The first report has no predecessor: its
changes are those of its period.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event

from ..runtime import AuditLog
from ..store import coverage as pair_queries
from ..store import systems as registry_queries
from ..store.events import committed_size
from ..store.session import driver_connection
from .alerts import alerts_since
from .flows import FlowQuery, flow_map_json, gaps_json, load_flow_map, period_days
from .ingest import prepare
from .read_audit import READ_EVENT_TYPE, read_event
from .reserved import SERVICE_SYSTEM_ID, is_reserved_system
from .systems import registry_versions
from .tokens import Caller

COMMITTEE_DESTINATION = f"{SERVICE_SYSTEM_ID}:compliance-committee"
COMMITTEE_SUBJECT = Identifier(system="urn:auditsvc:report", value="compliance-committee")
COMMITTEE_KIND = registry_queries.RegistryKind(SERVICE_SYSTEM_ID, COMMITTEE_DESTINATION, READ_EVENT_TYPE)


async def last_committee_report(audit: AuditLog) -> tuple[int, str] | None:
    """(seq, received_at) of the newest committee report, if any."""
    key = audit.keys.identifier_hmac(COMMITTEE_SUBJECT.system, COMMITTEE_SUBJECT.value)
    async with driver_connection(audit.engine) as conn:
        found = await registry_queries.newest_entries(conn, audit.log_id, [key], COMMITTEE_KIND)
    if 0 not in found:
        return None
    seq, record = found[0]
    return seq, json.loads(record)["received_at"]


async def _record(audit: AuditLog, reader: Caller, attributes: dict[str, str]) -> int:
    event = read_event(
        [COMMITTEE_SUBJECT],
        actor={"id": reader.token_id, "type": "user", "role": reader.role.value, "name": reader.name},
        destination=COMMITTEE_DESTINATION,
        data_elements=["AuditEvent"],
        attributes={"query": "compliance-committee", **attributes},
    )
    [result], _ = await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, reader.token_id))
    return result.seq


async def committee_report(
    audit: AuditLog, query: FlowQuery, reader: Caller, expiring_within_days: int, now: datetime | None = None
) -> dict[str, Any]:
    """The report's content; the report recorded in the chain before it is returned."""
    now = now or datetime.now(UTC)
    first, last = period_days(query, now.date())
    previous = await last_committee_report(audit)
    flow_map = await load_flow_map(audit, first, last, now)
    async with driver_connection(audit.engine) as conn:
        as_of = await committed_size(conn, audit.log_id)
        pairs = await pair_queries.pairs(conn, audit.log_id, as_of)
    since_seq = previous[0] if previous else None
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)

    def after(seq: int, at: datetime) -> bool:
        return seq > since_seq if since_seq is not None else at >= start

    new_pairs = [
        {
            "source_system": p.source,
            "destination_system": p.destination,
            "first_event": format_timestamp(p.first_occurred_at),
        }
        for p in sorted(pairs, key=lambda p: p.first_seq)
        if not is_reserved_system(p.source)
        and not is_reserved_system(p.destination)
        and after(p.first_seq, p.first_occurred_at)
    ]
    registry_changes = [
        {k: v for k, v in e.items() if k != "registered"}
        for e in await registry_versions(audit)
        if after(e["recorded"]["seq"], datetime.fromisoformat(e["recorded"]["at"].replace("Z", "+00:00")))
    ]
    report: dict[str, Any] = {
        "map": flow_map_json(flow_map),
        "gaps": await gaps_json(audit, flow_map, expiring_within_days),
        "changes": {
            "since": {"seq": previous[0], "at": previous[1]} if previous else None,
            "new_pairs": new_pairs,
            "registry_changes": registry_changes,
            "alerts": await alerts_since(audit, since_seq),
        },
    }
    period = report["map"]["period"]
    attributes = {"from": period["from"], "to": period["to"], "as_of": str(as_of)}
    if previous:
        attributes["previous_seq"] = str(previous[0])
    report["recorded_seq"] = await _record(audit, reader, attributes)
    return report
