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
from dataclasses import dataclass
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


def _reveals(run: _Run, touch: queries.Touch) -> bool:
    """Whether the page ``run`` recorded listed ``touch``."""
    attributes = run.record["attributes"]
    try:
        if touch.seq >= int(attributes["as_of"]):
            return False
        period = (datetime.fromisoformat(attributes["from"]), datetime.fromisoformat(attributes["to"]))
    except (KeyError, ValueError, TypeError):
        return False
    return period[0] <= touch.occurred_at <= period[1] and run.first <= (touch.occurred_at, touch.seq) <= run.last


@dataclass(frozen=True)
class _Run:
    seq: int
    kind: str
    subject: str
    record: dict[str, Any]
    first: tuple[datetime, int]
    last: tuple[datetime, int]


def _run(seq: int, raw: str) -> _Run | None:
    """A recorded page that listed something, or None (nothing listed, or not a page of these reports)."""
    record = json.loads(raw)
    attributes = record.get("attributes") or {}
    kind = str(attributes.get("query", "")).removesuffix("-report")
    if kind not in KINDS:
        return None
    try:
        first = _position(attributes["first_at"], attributes["first_seq"])
        last = _position(attributes["last_at"], attributes["last_seq"])
    except (KeyError, ValueError, TypeError):  # a page that listed nothing has no bounds
        return None
    return _Run(seq, kind, str(attributes.get("subject", "")), record, first, last)


async def revealed_by(
    conn: Connection,
    log_id: int,
    keys: ServerKeys,
    patient: tuple[list[bytes], datetime, datetime, int],
    systems: list[str],
    actors: list[str],
) -> list[dict[str, Any]]:
    """The report runs (one entry per page recorded) that listed any of the
    patient's events (``patient``: their identifier keys, the period and the
    tree size of the patient report), oldest first. ``systems`` and
    ``actors``: those the patient's events name (the report's summary).

    The runs over those systems and actors are looked up first (usually
    few); the patient's events are read only when there are some, and only
    within the span the runs' pages cover."""
    hmacs, start, end, as_of = patient
    subjects = [("system-access", s) for s in systems] + [("actor-access", a) for a in actors]
    if not subjects:
        return []
    key_of = {_subject_key(keys, kind, subject): (kind, subject) for kind, subject in subjects}
    raw_runs = await queries.report_runs(conn, log_id, list(key_of), as_of, SERVICE_SYSTEM_ID, RUNS_PER_SUBJECT)
    wanted = set(subjects)
    runs = [r for r in (_run(seq, raw) for seq, raw in raw_runs) if r is not None and (r.kind, r.subject) in wanted]
    if not runs:
        return []
    window = (max(start, min(r.first[0] for r in runs)), min(end, max(r.last[0] for r in runs)))
    if window[0] > window[1]:
        return []
    touches = await queries.patient_touches(conn, log_id, hmacs, *window, as_of)
    by_subject: dict[tuple[str, str], list[queries.Touch]] = defaultdict(list)
    for t in touches:
        by_subject[("system-access", t.source)].append(t)
        if t.destination != t.source:
            by_subject[("system-access", t.destination)].append(t)
        by_subject[("actor-access", t.actor_id)].append(t)
    found: list[dict[str, Any]] = []
    for run in runs:
        if any(_reveals(run, t) for t in by_subject.get((run.kind, run.subject), ())):
            record = run.record
            actor = record.get("actor") or {}
            found.append(
                {
                    "report": run.kind,
                    "subject": run.subject,
                    "at": record.get("occurred_at"),
                    "seq": run.seq,
                    "event_id": record.get("event_id"),
                    "by": {k: actor[k] for k in ("id", "role", "name") if actor.get(k) is not None},
                    "format": (record.get("attributes") or {}).get("format"),
                }
            )
    return sorted(found, key=lambda r: r["seq"])
