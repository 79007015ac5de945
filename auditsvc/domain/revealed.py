"""Which by-system and by-actor report pages revealed this patient.

Each page of those reports is recorded as one ``audit-log-query`` event
(domain/page_audit.py) under the subject it was run over, with the tree
size it was answered at and the (occurred_at, seq) bounds of the page. A
page listed the patient exactly when one of the patient's events on that
system (as source or destination), or by that actor, lies within the page's
bounds, in its period and below its tree size. The patient-access report
shows those runs as ``revealed_by``; finding them costs the patient's own
events plus, per system and actor they name, at most ``RUNS_PER_SUBJECT``
runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from ..keys import ServerKeys
from ..store import revealed as queries
from ..store.session import Connection
from .page_audit import subject_identifier
from .reserved import SERVICE_SYSTEM_ID

RUNS_PER_SUBJECT = 1000
KINDS = ("system-access", "actor-access")


def _subject_key(keys: ServerKeys, kind: str, subject: str) -> bytes:
    ident = subject_identifier(kind, subject)
    return keys.identifier_hmac(ident.system, ident.value)


def _position(stamp: str, seq: str) -> tuple[datetime, int]:
    return datetime.fromisoformat(stamp), int(seq)


def _reveals(attributes: dict[str, Any], touch: queries.Touch) -> bool:
    """Whether the page these attributes describe listed ``touch``."""
    try:
        if touch.seq >= int(attributes["as_of"]):
            return False
        if (
            not datetime.fromisoformat(attributes["from"])
            <= touch.occurred_at
            <= datetime.fromisoformat(attributes["to"])
        ):
            return False
        first = _position(attributes["first_at"], attributes["first_seq"])
        last = _position(attributes["last_at"], attributes["last_seq"])
    except (KeyError, ValueError, TypeError):  # a page that listed nothing has no bounds
        return False
    return first <= (touch.occurred_at, touch.seq) <= last


async def revealed_by(
    conn: Connection, log_id: int, keys: ServerKeys, hmacs: list[bytes], start: datetime, end: datetime, as_of: int
) -> list[dict[str, Any]]:
    """The report runs (one entry per page recorded) that listed any of the
    patient's events in [start, end] below ``as_of``, oldest first."""
    touches = await queries.patient_touches(conn, log_id, hmacs, start, end, as_of)
    by_subject: dict[tuple[str, str], list[queries.Touch]] = defaultdict(list)
    for t in touches:
        by_subject[("system-access", t.source)].append(t)
        if t.destination != t.source:
            by_subject[("system-access", t.destination)].append(t)
        by_subject[("actor-access", t.actor_id)].append(t)
    if not by_subject:
        return []
    key_of = {_subject_key(keys, kind, subject): (kind, subject) for kind, subject in by_subject}
    runs = await queries.report_runs(conn, log_id, list(key_of), as_of, SERVICE_SYSTEM_ID, RUNS_PER_SUBJECT)
    found: list[dict[str, Any]] = []
    for seq, raw in runs:
        record = json.loads(raw)
        attributes = record.get("attributes") or {}
        kind = str(attributes.get("query", "")).removesuffix("-report")
        subject = str(attributes.get("subject", ""))
        if kind not in KINDS or (kind, subject) not in by_subject:
            continue
        if any(_reveals(attributes, t) for t in by_subject[(kind, subject)]):
            actor = record.get("actor") or {}
            found.append(
                {
                    "report": kind,
                    "subject": subject,
                    "at": record.get("occurred_at"),
                    "seq": seq,
                    "event_id": record.get("event_id"),
                    "by": {k: actor[k] for k in ("id", "role", "name") if actor.get(k) is not None},
                    "format": attributes.get("format"),
                }
            )
    return sorted(found, key=lambda r: r["seq"])
