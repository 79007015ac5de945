"""Alerts on the flow of PHI, recorded in the chain and delivered to a webhook.

Kinds, each fired once for its key (the alerts table's unique key):

- ``new_flow``: a source -> destination pair never seen before (its
  ``system_pairs`` row, written at append, from the alerts' start: pairs a
  store had when alerts began are not news), keyed by the pair;
- ``uncovered_flow``: events of the last ``lookback_days`` into (or through)
  a party without an effective BAA, or into an unregistered system
  (domain/flows.py's gaps), keyed by pair, side, reason and the registry
  version judged, so a renewed-then-lapsed BAA alerts again;
- ``baa_expiring``: a BAA on file that expires within ``baa_expiring_days``,
  keyed by system and expiry date;
- ``system_silent``: a system silent for the coverage report's window
  (domain/coverage.py's rule), keyed by system and its last event.

One process at a time looks (``pg_try_advisory_xact_lock``); the alert's
chain event (source ``auditsvc``, type ``flow-alert``, subject
``urn:auditsvc:alert|<alert_id>``) and its row are written in one
transaction, so an alert is never recorded twice nor lost between the two.
An acknowledgement is likewise a chain event (``alert-acknowledgement``,
the officer as actor, the notes) written with the row's update.

Delivery: a JSON body with no PHI (the alert's kind, systems and counts),
signed ``X-Auditsvc-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``
with ``X-Auditsvc-Timestamp``; retried with exponential backoff and jitter
on a connection error, 408, 425, 429 or 5xx (``Retry-After`` honoured) up
to ``max_attempts``, then ``failed``; any other answer fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import httpx
from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.chain import format_timestamp
from auditsvc_sdk.wire import wire_event
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..settings import Settings
from ..store import alerts as queries
from ..store import coverage as coverage_queries
from ..store.append import append_group
from ..store.events import committed_size
from ..store.session import Connection, driver_connection
from .append_types import PendingBatch
from .baa import baa_state, needs_baa
from .coverage import CoverageConfig, activity
from .errors import InvalidInput, NotFound
from .flows import find_gaps, load_flow_map
from .ingest import parse_body, parse_params, prepare
from .read_audit import record_read
from .reserved import SERVICE_SYSTEM_ID, is_reserved_system
from .tokens import Caller

log = logging.getLogger("auditsvc.alerts")

ALERT_EVENT_TYPE = "flow-alert"
ACK_EVENT_TYPE = "alert-acknowledgement"
ALERT_DESTINATION = f"{SERVICE_SYSTEM_ID}:alerts"
ALERT_SUBJECT_SYSTEM = "urn:auditsvc:alert"
KINDS = ("new_flow", "uncovered_flow", "baa_expiring", "system_silent")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_NOTES = 1000
DELIVERY_BATCH = 20


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = None
    webhook_secret: bytes | None = None
    interval: float = 60.0
    baa_expiring_days: int = 30
    lookback_days: int = 2
    silent_after: timedelta = timedelta(hours=24)
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertConfig:
        secret = settings.alert_webhook_secret
        return cls(
            webhook_url=settings.alert_webhook_url,
            webhook_secret=secret.get_secret_value().encode() if secret else None,
            interval=settings.alert_interval_seconds,
            baa_expiring_days=settings.alert_baa_expiring_days,
            silent_after=CoverageConfig.from_settings(settings).silent_after,
        )


# --- what to raise ---------------------------------------------------------------------


async def _new_flows(conn: Connection, log_id: int, as_of: int) -> list[queries.NewAlert]:
    start = await queries.new_pairs_from(conn, log_id)
    out = []
    for p in await coverage_queries.pairs(conn, log_id, as_of):
        if p.first_seq < start or is_reserved_system(p.source) or is_reserved_system(p.destination):
            continue
        details = {"first_event": format_timestamp(p.first_occurred_at), "first_seq": p.first_seq}
        out.append(_alert("new_flow", f"{p.source} -> {p.destination}", [p.source, p.destination], details))
    return out


def _alert(kind: str, key: str, systems: list[str], details: dict[str, Any]) -> queries.NewAlert:
    return queries.NewAlert(uuid.uuid4(), kind, key, systems, details)


async def _flow_alerts(audit: AuditLog, config: AlertConfig, now: datetime) -> list[queries.NewAlert]:
    today = now.date()
    flow_map = await load_flow_map(audit, today - timedelta(days=max(config.lookback_days - 1, 0)), today, now)
    out = []
    for gap in find_gaps(flow_map, today, expiring_within_days=-1):  # no expiring: baa_expiring below
        if gap.flow is None:
            continue
        version = flow_map.timeline.on(gap.system_id, gap.days[-1])
        registered = version["recorded"]["seq"] if version.get("recorded") else "unregistered"
        flow = gap.flow
        spans = [flow.days[d] for d in gap.days]
        details = {
            "reason": gap.reason,
            "party_side": gap.party_side,
            "party_system": gap.system_id,
            "events": sum(s.events for s in spans),
            "first_event": format_timestamp(min(s.first_at for s in spans)),
            "last_event": format_timestamp(max(s.last_at for s in spans)),
        }
        key = f"{flow.source} -> {flow.destination}|{gap.party_side}|{gap.reason}|{registered}"
        out.append(_alert("uncovered_flow", key, [flow.source, flow.destination], details))
    for system_id, versions in sorted(flow_map.timeline.versions.items()):
        entry = versions[-1]
        expires = (entry.get("baa") or {}).get("expires")
        if is_reserved_system(system_id) or not needs_baa(entry) or baa_state(entry, today) != "covered" or not expires:
            continue
        days_left = (date.fromisoformat(expires) - today).days
        if days_left <= config.baa_expiring_days:
            details = {"expires": expires, "days_left": days_left, "organization": entry["organization"] or ""}
            out.append(_alert("baa_expiring", f"{system_id}|{expires}", [system_id], details))
    return out


async def _silent(conn: Connection, log_id: int, as_of: int, config: AlertConfig, now: datetime) -> list[Any]:
    pairs = await coverage_queries.pairs(conn, log_id, as_of)
    seen = sorted({s for p in pairs for s in (p.source, p.destination) if not is_reserved_system(s)})
    last = await coverage_queries.systems_last(conn, log_id, seen, as_of, 2)
    out = []
    for system_id in seen:
        state = activity(last.get(system_id), now, config.silent_after)
        if state["silent"] and not state["never_seen"]:
            details = {
                "last_event": state["last_event"],
                "silent_after_seconds": int(config.silent_after.total_seconds()),
            }
            out.append(_alert("system_silent", f"{system_id}|{state['last_seq']}", [system_id], details))
    return out


# --- raising: the chain event and the row, together --------------------------------------


def _attributes(alert: queries.NewAlert) -> dict[str, str | int | bool]:
    out: dict[str, str | int | bool] = {
        "alert_id": str(alert.alert_id),
        "kind": alert.kind,
        "systems": " ".join(alert.systems),
    }
    for k, v in alert.details.items():
        out[k] = v if isinstance(v, int | bool) else str(v)
    return out


def _service_event(event_type: str, subject: str, actor: dict[str, Any], attributes: dict[str, Any]) -> PhiAccess:
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="E",
        event_type=event_type,
        patient={"identifiers": [Identifier(system=ALERT_SUBJECT_SYSTEM, value=subject)]},
        data_elements=["Alert"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": ALERT_DESTINATION},
        actor=actor,
        outcome=0,
        attributes=attributes,
    )


async def _append_in(conn: Connection, audit: AuditLog, events: list[PhiAccess], emitter: str) -> list[int]:
    """Append ``events`` within ``conn``'s transaction (a savepoint): they commit with it."""
    batch = PendingBatch(prepare([wire_event(e) for e in events], audit.keys, emitter))
    [results], _ = await append_group(conn, audit.log_id, audit.genesis, [batch])
    return [r.seq for r in results]


async def raise_alerts(audit: AuditLog, config: AlertConfig, now: datetime | None = None) -> list[queries.NewAlert]:
    """Look for every kind of alert and raise those not raised yet; the
    alerts raised (none when another process holds the pass)."""
    now = now or datetime.now(UTC)
    async with driver_connection(audit.engine) as conn:
        as_of = await committed_size(conn, audit.log_id)
        candidates = await _new_flows(conn, audit.log_id, as_of)
        candidates += await _silent(conn, audit.log_id, as_of, config, now)
    candidates += await _flow_alerts(audit, config, now)
    if not candidates:
        return []
    async with driver_connection(audit.engine) as conn, conn.transaction():
        if not await queries.try_alert_lock(conn, audit.log_id):
            return []
        fresh = [
            candidates[i] for i in await queries.unraised(conn, audit.log_id, [(c.kind, c.key) for c in candidates])
        ]
        fresh = list({(c.kind, c.key): c for c in fresh}.values())
        if not fresh:
            return []
        actor = {"id": SERVICE_SYSTEM_ID, "type": "system", "name": "auditsvc alerts"}
        events = [_service_event(ALERT_EVENT_TYPE, str(a.alert_id), actor, _attributes(a)) for a in fresh]
        seqs = await _append_in(conn, audit, events, SERVICE_SYSTEM_ID)
        await queries.insert_alerts(conn, audit.log_id, fresh, seqs, now)
    return fresh


# --- reading and acknowledging -----------------------------------------------------------


def alert_json(row: queries.AlertRow) -> dict[str, Any]:
    return {
        "alert_id": str(row.alert_id),
        "kind": row.kind,
        "systems": row.systems,
        "details": row.details,
        "raised_at": format_timestamp(row.raised_at),
        "raised_seq": row.raised_seq,
        "status": "acknowledged" if row.acknowledged_at else "open",
        "acknowledged": None
        if row.acknowledged_at is None
        else {
            "at": format_timestamp(row.acknowledged_at),
            "by": row.acknowledged_by,
            "seq": row.acknowledged_seq,
            "notes": row.notes,
        },
        "delivery": {"state": row.delivery, "attempts": row.attempts, "last_error": row.last_error},
    }


class AlertQuery(BaseModel):
    """``GET /v1/alerts``: ``status`` open (default), acknowledged or all; newest first."""

    model_config = ConfigDict(extra="forbid")

    status: queries.Status = "open"
    limit: int = Field(default=100, ge=1, le=500)


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: str = Field(default="", max_length=MAX_NOTES, pattern=r"^[^\x00]*$")


def parse_alert_query(params: dict[str, Any]) -> AlertQuery:
    return parse_params(AlertQuery, params, "alert list request")


def parse_acknowledgement(body: bytes) -> AcknowledgeRequest:
    return parse_body(AcknowledgeRequest, body or b"{}", "acknowledgement")


LIST_SUBJECT = Identifier(system="urn:auditsvc:report", value="alerts")


async def list_alerts(audit: AuditLog, query: AlertQuery, reader: Caller | None) -> dict[str, Any]:
    """The alerts, newest first; a person's listing is recorded in the chain."""
    async with driver_connection(audit.engine) as conn:
        rows = await queries.list_alerts(conn, audit.log_id, query.status, query.limit)
    if reader is not None:
        await record_read(audit, reader, [LIST_SUBJECT], data_elements=["Alert"], detail="alerts")
    return {"status": query.status, "alerts": [alert_json(r) for r in rows]}


async def alerts_since(audit: AuditLog, seq: int | None, limit: int = 500) -> list[dict[str, Any]]:
    """Alerts raised after the chain's ``seq`` (all, with None), oldest first."""
    async with driver_connection(audit.engine) as conn:
        rows = await queries.alerts_after(conn, audit.log_id, -1 if seq is None else seq, limit)
    return [alert_json(r) for r in rows]


def _alert_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(
            "alert_id: not a UUID", [{"loc": ["alert_id"], "msg": "not a UUID", "type": "value_error"}]
        ) from None


async def acknowledge_alert(
    audit: AuditLog, raw_id: str, request: AcknowledgeRequest, officer: Caller
) -> dict[str, Any]:
    """Record the acknowledgement in the chain and on the alert, together.
    Acknowledging an acknowledged alert changes nothing and answers it as it is."""
    alert_id = _alert_id(raw_id)
    now = datetime.now(UTC)
    async with driver_connection(audit.engine) as conn, conn.transaction():
        row = await queries.alert_for_update(conn, audit.log_id, alert_id)
        if row is None:
            raise NotFound("no alert with this alert_id")
        if row.acknowledged_at is None:
            actor = {"id": officer.token_id, "type": "user", "role": officer.role.value}
            if officer.name:
                actor["name"] = officer.name
            attributes: dict[str, Any] = {"alert_id": str(alert_id), "alert_seq": row.raised_seq, "kind": row.kind}
            if request.notes:
                attributes["notes"] = request.notes
            [seq] = await _append_in(
                conn, audit, [_service_event(ACK_EVENT_TYPE, str(alert_id), actor, attributes)], officer.token_id
            )
            await queries.acknowledge(conn, audit.log_id, alert_id, now, officer.token_id, seq, request.notes)
            row = await queries.alert_for_update(conn, audit.log_id, alert_id)
            assert row is not None
    return alert_json(row)


# --- delivery ------------------------------------------------------------------------------


def webhook_body(row: queries.AlertRow, log_name: str) -> bytes:
    """What the webhook receives: the alert's kind, systems and counts; no PHI."""
    body = {
        "alert_id": str(row.alert_id),
        "kind": row.kind,
        "systems": row.systems,
        "details": row.details,
        "raised_at": format_timestamp(row.raised_at),
        "chain": {"log": log_name, "seq": row.raised_seq},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


Outcome = Literal["delivered", "retry", "failed"]
Send = Callable[[str, bytes, dict[str, str]], Awaitable[httpx.Response]]


def _judge(response: httpx.Response | None) -> tuple[Outcome, str | None, float | None]:
    if response is None:
        return "retry", "connection error", None
    if 200 <= response.status_code < 300:
        return "delivered", None, None
    if response.status_code in RETRY_STATUSES:
        after = response.headers.get("retry-after", "")
        return "retry", f"HTTP {response.status_code}", float(after) if after.isdigit() else None
    return "failed", f"HTTP {response.status_code}", None


def backoff(config: AlertConfig, attempts: int, retry_after: float | None, rand: Callable[[], float]) -> float:
    """Seconds before the next attempt: exponential, jittered (half to all of the step), at least ``Retry-After``."""
    delay = min(config.backoff_max, config.backoff_base * float(2 ** max(attempts - 1, 0))) * (0.5 + rand() / 2)
    return max(delay, retry_after or 0.0)


async def deliver_due(
    audit: AuditLog,
    config: AlertConfig,
    send: Send,
    now: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> int:
    """Deliver the alerts whose attempt is due; the number delivered."""
    if not config.webhook_url or config.webhook_secret is None:
        return 0
    now = now or datetime.now(UTC)
    delivered = 0
    async with driver_connection(audit.engine) as conn, conn.transaction():
        if not await queries.try_alert_lock(conn, audit.log_id):
            return 0
        for row in await queries.due_for_delivery(conn, audit.log_id, now, DELIVERY_BATCH):
            body = webhook_body(row, audit.log_name)
            stamp = int(now.timestamp())
            headers = {
                "Content-Type": "application/json",
                "X-Auditsvc-Timestamp": str(stamp),
                "X-Auditsvc-Signature": signature(config.webhook_secret, stamp, body),
                "X-Auditsvc-Alert-Id": str(row.alert_id),
            }
            try:
                response: httpx.Response | None = await send(config.webhook_url, body, headers)
            except httpx.HTTPError:
                response = None
            outcome, error, retry_after = _judge(response)
            attempts = row.attempts + 1
            if outcome == "retry" and attempts >= config.max_attempts:
                outcome = "failed"
            state = {"delivered": "delivered", "failed": "failed", "retry": "pending"}[outcome]
            delay = backoff(config, attempts, retry_after, rand) if outcome == "retry" else 0.0
            await queries.set_delivery(
                conn, audit.log_id, row.alert_id, state, attempts, now + timedelta(seconds=delay), error
            )
            delivered += outcome == "delivered"
    return delivered


class AlertWatcher:
    """The service's background pass: raise alerts, deliver them, sleep ``interval``."""

    def __init__(self, audit: AuditLog, config: AlertConfig) -> None:
        self._audit = audit
        self._config = config
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="auditsvc-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self._config.timeout) as client:

            async def send(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
                return await client.post(url, content=body, headers=headers)

            while True:
                # A pass an interval after start, not at once: a restart loop cannot flood the chain.
                await asyncio.sleep(self._config.interval)
                try:
                    await raise_alerts(self._audit, self._config)
                    await deliver_due(self._audit, self._config, send)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried next pass; only the class (a message may quote a row)
                    log.warning("alert pass failed (%s)", type(exc).__name__)
