"""The privacy officer's question: every system that accessed this patient.

A report is itself a read of PHI, so it is recorded in the same chain
(event type ``audit-log-query``) before the answer is returned.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import reports as queries
from ..store.session import driver_connection
from .backfill import require_read_model
from .cursors import page_start, page_with_cursor
from .errors import InvalidInput
from .ingest import parse_body
from .periods import DayOrTimestamp, report_period
from .read_audit import record_read
from .revealed import revealed_by

KIND = "patient-access"
"""What the report's cursors are bound to."""


class PatientAccessQuery(BaseModel):
    """Body of ``POST /v1/reports/patient-access``. ``from``/``to`` take a
    date (whole days, UTC) or an RFC 3339 timestamp; both ends inclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identifier: Identifier
    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)


ACTIONS = ("C", "R", "U", "D", "E")
OUTCOMES = (0, 4, 8, 12)
_CODE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
MAX_SYSTEM_ID = 200


@dataclass(frozen=True)
class PatientFilters:
    """Narrowing of the patient report (the console's filters): applied in the
    store's queries, so the systems, the timeline and every page agree."""

    system_id: str | None = None
    action: str | None = None
    purpose_of_use: str | None = None
    break_glass_only: bool = False
    outcome: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PatientFilters:
        """From query parameters ``system``, ``action``, ``purpose``, ``break_glass``,
        ``outcome``; a bad value is refused naming the parameter, never quoting it."""
        errors: list[dict[str, Any]] = []

        def refuse(name: str, why: str) -> None:
            errors.append({"loc": ["query", name], "msg": why, "type": "value_error"})

        system = params.get("system") or None
        if system is not None and len(system) > MAX_SYSTEM_ID:
            refuse("system", f"at most {MAX_SYSTEM_ID} characters")
        action = params.get("action") or None
        if action is not None and action not in ACTIONS:
            refuse("action", "one of " + ", ".join(ACTIONS))
        purpose = params.get("purpose") or None
        if purpose is not None and not _CODE.match(purpose):
            refuse("purpose", "a purpose-of-use code (letters, digits, . _ : / -)")
        outcome_text = params.get("outcome") or None
        outcome = None
        if outcome_text is not None:
            if outcome_text.isdigit() and int(outcome_text) in OUTCOMES:
                outcome = int(outcome_text)
            else:
                refuse("outcome", "one of 0, 4, 8, 12")
        if errors:
            raise InvalidInput(f"{len(errors)} invalid filter(s): " + ", ".join(e["loc"][1] for e in errors), errors)
        return cls(system, action, purpose, params.get("break_glass") in ("1", "true", "on"), outcome)

    @property
    def active(self) -> bool:
        return self != PatientFilters()

    def params(self) -> queries.FilterParams:
        return (self.system_id, self.action, self.purpose_of_use, self.break_glass_only, self.outcome)

    def cursor_kind(self) -> str:
        """The cursors of a filtered report are bound to its filters."""
        if not self.active:
            return KIND
        return KIND + ":" + hashlib.sha256(repr(self.params()).encode()).hexdigest()[:16]


def _system_json(s: queries.SystemAccess) -> dict[str, Any]:
    return {
        "system_id": s.system_id,
        "count": s.count,
        "as_source": s.as_source,
        "as_destination": s.as_destination,
        "first_access": format_timestamp(s.first_access),
        "last_access": format_timestamp(s.last_access),
        "actions": s.actions,
        "data_elements": s.data_elements,
        "actors": s.actors,
    }


def parse_query(body: bytes) -> PatientAccessQuery:
    """The report request from raw body bytes, errors named by field."""
    return parse_body(PatientAccessQuery, body, "report request")


async def patient_access_report(
    audit: AuditLog,
    query: PatientAccessQuery,
    reader: Any,
    filters: PatientFilters | None = None,
    *,
    timeline: bool = False,
) -> dict[str, Any]:
    """The report (recorded in the chain); with ``filters``, of the events
    that pass them; with ``timeline``, also ``timeline``: (system, UTC day,
    accesses) rows over the whole period."""
    filters = filters or PatientFilters()
    kind = filters.cursor_kind()
    start, end = report_period(query.from_, query.to)
    id_hmac = audit.keys.identifier_hmac(query.identifier.system, query.identifier.value)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        page = await page_start(conn, audit.log_id, query.cursor, kind)
        after, as_of = page.position, page.as_of
        hmacs = await queries.linked_identifier_hmacs(conn, audit.log_id, id_hmac)
        identifiers = await queries.identifiers_for(conn, audit.log_id, hmacs)
        params = filters.params() if filters.active else None
        systems = await queries.system_accesses(conn, audit.log_id, hmacs, start, end, as_of, params)
        days = (
            await queries.daily_accesses(conn, audit.log_id, hmacs, start, end, as_of, filters.params())
            if timeline
            else None
        )
        # The by-system and by-actor report pages that listed this patient (the first page only).
        revealed = None
        if not query.cursor:
            actors = sorted({a["id"] for s in systems for a in s.actors})
            patient = (hmacs, start, end, as_of)
            revealed = await revealed_by(
                conn, audit.log_id, audit.keys, patient, [s.system_id for s in systems], actors
            )
        if params is None:
            rows = await queries.access_events(conn, audit.log_id, hmacs, start, end, as_of, after, query.limit + 1)
        else:
            rows = await queries.filtered_access_events(
                conn, audit.log_id, hmacs, start, end, as_of, after, query.limit + 1, params
            )
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    linked = sorted({(s, v if v is not None else sealer.open(s, str(enc))) for s, v, enc in identifiers})
    if not linked:
        linked = [(query.identifier.system, query.identifier.value)]
    rows, next_cursor = page_with_cursor(rows, query.limit, kind, as_of)
    await record_read(audit, reader, [query.identifier], data_elements=["AuditEvent"], detail="patient-access-report")
    answer: dict[str, Any] = {
        "patient": {"identifiers": [{"system": s, "value": v} for s, v in linked]},
        "systems": [_system_json(s) for s in systems],
        "events": [sealer.reveal_record(json.loads(record)) for _, _, record in rows],
        "next_cursor": next_cursor,
        "revealed_by": revealed,
    }
    if days is not None:
        answer["timeline"] = days
    return answer
