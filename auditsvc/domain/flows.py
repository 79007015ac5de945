"""The PHI flow map and BAA coverage: every source -> destination pair seen in
a period, the parties on each side, and the flows into or through a party
without an effective business associate agreement.

Both reports read the rollup (store/flows.py: one row per day, pair, event
type, purpose and action), so their cost is the period's pairs x days x
kinds, never the log's events; the registry's history (a few events per
system) judges each day's events against the entry in force that day
(domain/baa.py). Periods are whole UTC days (the rollup's grain): a
timestamp bound widens to its day, and the answer says the period used.

"Through": a system that is the destination of one flow of the period and
the source of another (middleware, an interface engine, a clearinghouse).
A flow is a BAA gap when its destination needs a BAA and has no effective
one on an event's day, when its destination is unregistered, or when its
source is such a "through" system without an effective BAA.

Patients affected by a gap: the distinct patients among that pair's events
on the gap's days (store/flows.py PATIENTS_SQL), each event counted under
its smallest patient key: its cost is those events, at most
``PATIENT_SCAN_EVENTS`` a gap (past them the count is a lower bound,
``patients_exact: false``); an overcount when one patient reaches a pair
under disjoint sets of identifiers.

The service's own ids (``auditsvc``, ``auditsvc:*``) are no party and are
left out. Each report run is recorded in the chain before it is answered.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..store import flows as queries
from ..store.session import driver_connection
from .baa import UNCOVERED, RegistryTimeline, baa_state, needs_baa, party
from .backfill import require_read_model
from .errors import InvalidInput
from .ingest import parse_body, parse_params
from .periods import DayOrTimestamp, bound
from .read_audit import record_read
from .reserved import is_reserved_system
from .systems import registry_versions

DEFAULT_DAYS = 90
"""A period left open is the last 90 days: a quarter, a committee's usual span."""
EXPIRING_DEFAULT_DAYS = 30
PATIENT_SCAN_EVENTS = 100_000
"""A gap's patients are counted over at most this many of its events (its
cost bounded per gap); past them the count is a lower bound (``patients_exact``)."""
REPORT_SYSTEM = "urn:auditsvc:report"


class FlowQuery(BaseModel):
    """Body of ``POST /v1/reports/flows``: ``from``/``to`` a date or RFC 3339
    timestamp (widened to whole UTC days), inclusive; default the last 90 days."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None


class GapQuery(FlowQuery):
    """``GET /v1/reports/baa-gaps``: the period as above, and the BAAs that
    expire within ``expiring_within_days`` (default 30) of today."""

    expiring_within_days: int = Field(default=EXPIRING_DEFAULT_DAYS, ge=0, le=3650)


def parse_flow_query(body: bytes) -> FlowQuery:
    return parse_body(FlowQuery, body or b"{}", "flow report request")


def parse_gap_query(params: dict[str, Any]) -> GapQuery:
    # An empty parameter (``?to=``) is an absent one.
    return parse_params(GapQuery, {k: v for k, v in params.items() if v not in (None, "")}, "BAA gap request")


def period_days(query: FlowQuery, today: date) -> tuple[date, date]:
    """The period's first and last UTC day."""
    last = bound(query.to, end=True).date() if query.to is not None else today
    first = bound(query.from_, end=False).date() if query.from_ is not None else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last and query.to is None:
        return first, first  # a period that starts after today: nothing in it yet
    if first > last:
        raise InvalidInput("'from' is after 'to'", [{"loc": ["from"], "msg": "after 'to'", "type": "value_error"}])
    return first, last


def _stamp(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


# --- the period's flows, from the rollup ----------------------------------------------


@dataclass
class DaySpan:
    events: int
    first_at: datetime
    last_at: datetime

    def add(self, events: int, first_at: datetime, last_at: datetime) -> None:
        self.events += events
        self.first_at = min(self.first_at, first_at)
        self.last_at = max(self.last_at, last_at)


@dataclass
class Flow:
    """One source -> destination pair over the period, day by day."""

    source: str
    destination: str
    days: dict[date, DaySpan] = field(default_factory=dict)
    event_types: Counter[str] = field(default_factory=Counter)
    purposes: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    data_elements: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(d.events for d in self.days.values())

    @property
    def first_at(self) -> datetime:
        return min(d.first_at for d in self.days.values())

    @property
    def last_at(self) -> datetime:
        return max(d.last_at for d in self.days.values())


@dataclass
class FlowMap:
    first: date
    last: date
    flows: list[Flow]
    timeline: RegistryTimeline
    as_of: datetime

    @property
    def through(self) -> set[str]:
        """Systems that receive PHI in one flow and send it on in another."""
        return {f.destination for f in self.flows} & {f.source for f in self.flows}


async def load_flow_map(audit: AuditLog, first: date, last: date, now: datetime) -> FlowMap:
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        rows = await queries.flow_days(conn, audit.log_id, first, last)
        elements = await queries.flow_elements(conn, audit.log_id, first, last)
    flows: dict[tuple[str, str], Flow] = {}
    for r in rows:
        if is_reserved_system(r.source) or is_reserved_system(r.destination):
            continue
        flow = flows.get((r.source, r.destination))
        if flow is None:
            flow = flows[(r.source, r.destination)] = Flow(r.source, r.destination)
        span = flow.days.get(r.day)
        if span is None:
            flow.days[r.day] = DaySpan(r.events, r.first_at, r.last_at)
        else:
            span.add(r.events, r.first_at, r.last_at)
        flow.event_types[r.event_type] += r.events
        flow.purposes[r.purpose or "(none)"] += r.events
        flow.actions[r.action] += r.events
    for key, flow in flows.items():
        flow.data_elements = elements.get(key, [])
    timeline = RegistryTimeline.of(await registry_versions(audit))
    ordered = sorted(flows.values(), key=lambda f: (f.source, f.destination))
    return FlowMap(first, last, ordered, timeline, now)


def _side(flow_map: FlowMap, flow: Flow, system_id: str) -> dict[str, Any]:
    """A side of a flow: the entry in force on the flow's last day, and its
    events by the BAA state of their day."""
    states: Counter[str] = Counter()
    for day, span in flow.days.items():
        states[flow_map.timeline.state(system_id, day)] += span.events
    entry = flow_map.timeline.on(system_id, flow.last_at.astimezone(UTC).date())
    return {**party(entry), "through": system_id in flow_map.through, "baa_events": dict(sorted(states.items()))}


def _uncovered_on(flow_map: FlowMap, flow: Flow, day: date) -> bool:
    """Whether the flow's events of ``day`` are a BAA gap (the rule in the module docstring)."""
    destination = flow_map.timeline.state(flow.destination, day)
    if destination in (*UNCOVERED, "unregistered"):
        return True
    return flow.source in flow_map.through and flow_map.timeline.state(flow.source, day) in UNCOVERED


def flow_json(flow_map: FlowMap, flow: Flow) -> dict[str, Any]:
    source = _side(flow_map, flow, flow.source)
    destination = _side(flow_map, flow, flow.destination)
    uncovered = sum(span.events for day, span in flow.days.items() if _uncovered_on(flow_map, flow, day))
    return {
        "source_system": flow.source,
        "destination_system": flow.destination,
        "events": flow.events,
        "first_seen": _stamp(flow.first_at),
        "last_seen": _stamp(flow.last_at),
        "data_elements": flow.data_elements,
        "purposes_of_use": dict(flow.purposes.most_common()),
        "event_types": dict(flow.event_types.most_common()),
        "actions": dict(sorted(flow.actions.items())),
        "source": source,
        "destination": destination,
        "uncovered_events": uncovered,
    }


def _period(flow_map: FlowMap) -> dict[str, str]:
    return {
        "from": format_timestamp(_day_start(flow_map.first)),
        "to": format_timestamp(_day_start(flow_map.last + timedelta(days=1)) - timedelta(microseconds=1)),
    }


def flow_map_json(flow_map: FlowMap) -> dict[str, Any]:
    flows = [flow_json(flow_map, f) for f in flow_map.flows]
    systems = sorted({s for f in flow_map.flows for s in (f.source, f.destination)})
    current = [{**party(flow_map.timeline.current(s)), "through": s in flow_map.through} for s in systems]
    return {
        "period": _period(flow_map),
        "as_of": format_timestamp(flow_map.as_of),
        "summary": {
            "flows": len(flows),
            "systems": len(systems),
            "events": sum(f["events"] for f in flows),
            "uncovered_flows": sum(1 for f in flows if f["uncovered_events"]),
            "unregistered_systems": sum(1 for s in current if not s["registered"]),
        },
        "systems": current,
        "flows": flows,
    }


FLOWS_SUBJECT = Identifier(system=REPORT_SYSTEM, value="flows")
GAPS_SUBJECT = Identifier(system=REPORT_SYSTEM, value="baa-gaps")


async def flow_report(audit: AuditLog, query: FlowQuery, reader: Any, now: datetime | None = None) -> dict[str, Any]:
    """The flow map of ``query``'s period; the run recorded in the chain first."""
    now = now or datetime.now(UTC)
    first, last = period_days(query, now.date())
    flow_map = await load_flow_map(audit, first, last, now)
    await record_read(audit, reader, [FLOWS_SUBJECT], data_elements=["AuditEvent"], detail="flow-map")
    return flow_map_json(flow_map)


async def flow_map_with_gaps(
    audit: AuditLog, query: FlowQuery, reader: Any, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flow map and its BAA gaps (BAAs expiring within the default window)
    from one read of the rollup (the console's page); recorded in the chain as one run."""
    now = now or datetime.now(UTC)
    first, last = period_days(query, now.date())
    flow_map = await load_flow_map(audit, first, last, now)
    await record_read(audit, reader, [FLOWS_SUBJECT], data_elements=["AuditEvent"], detail="flow-map")
    return flow_map_json(flow_map), await gaps_json(audit, flow_map, EXPIRING_DEFAULT_DAYS)


# --- BAA gaps ---------------------------------------------------------------------------


@dataclass
class Gap:
    kind: str  # uncovered | unregistered | expiring
    reason: str  # none | expired | not_yet_effective | unregistered | expires_soon
    party_side: str  # destination | source
    system_id: str
    flow: Flow | None
    days: list[date] = field(default_factory=list)
    expires: str | None = None


def _ranges(days: list[date]) -> list[tuple[datetime, datetime]]:
    """Contiguous days as [start, end) instants."""
    out: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def find_gaps(flow_map: FlowMap, today: date, expiring_within_days: int) -> list[Gap]:
    """The period's gaps, each one flow and one reason, in the flows' order;
    then the BAAs expiring within the window, each with its inbound flows."""
    gaps: list[Gap] = []
    through = flow_map.through
    for flow in flow_map.flows:
        found: dict[tuple[str, str, str], Gap] = {}
        key: tuple[str, str, str]
        sides = [("destination", flow.destination)] + ([("source", flow.source)] if flow.source in through else [])
        for day in sorted(flow.days):
            for side, system_id in sides:
                state = flow_map.timeline.state(system_id, day)
                if state == "unregistered" and side == "destination":
                    key = ("unregistered", state, side)
                elif state in UNCOVERED:
                    key = ("uncovered", state, side)
                else:
                    continue
                gap = found.get(key)
                if gap is None:
                    gap = found[key] = Gap(key[0], key[1], side, system_id, flow)
                gap.days.append(day)
        gaps.extend(found.values())
    horizon = today + timedelta(days=expiring_within_days)
    for system_id, versions in sorted(flow_map.timeline.versions.items()):
        entry = versions[-1]
        if is_reserved_system(system_id) or not needs_baa(entry) or baa_state(entry, today) != "covered":
            continue
        expires = (entry["baa"] or {}).get("expires")
        if not expires or date.fromisoformat(expires) > horizon:
            continue
        inbound: list[Flow | None] = [f for f in flow_map.flows if f.destination == system_id]
        for into in inbound or [None]:
            days = sorted(into.days) if into is not None else []
            gaps.append(Gap("expiring", "expires_soon", "destination", system_id, into, days, expires))
    return gaps


async def gap_json(audit: AuditLog, flow_map: FlowMap, gap: Gap, today: date) -> dict[str, Any]:
    flow = gap.flow
    spans = [flow.days[d] for d in gap.days] if flow is not None else []
    patients, exact = 0, True
    if flow is not None and gap.days:
        async with driver_connection(audit.engine) as conn:
            patients, exact = await queries.pair_patients(
                conn, audit.log_id, flow.source, flow.destination, _ranges(gap.days), PATIENT_SCAN_EVENTS
            )
    as_of_day = gap.days[-1] if gap.days else today
    out = {
        "kind": gap.kind,
        "reason": gap.reason,
        "party_side": gap.party_side,
        "party": {
            **party(flow_map.timeline.on(gap.system_id, as_of_day)),
            "through": gap.system_id in flow_map.through,
        },
        "source_system": flow.source if flow is not None else None,
        "destination_system": flow.destination if flow is not None else None,
        "events": sum(s.events for s in spans),
        "patients": patients,
        "patients_exact": exact,
        "first_event": _stamp(min((s.first_at for s in spans), default=None)),
        "last_event": _stamp(max((s.last_at for s in spans), default=None)),
    }
    if gap.expires is not None:
        out["expires"] = gap.expires
        out["days_left"] = (date.fromisoformat(gap.expires) - today).days
    return out


async def gaps_json(audit: AuditLog, flow_map: FlowMap, expiring_within_days: int) -> dict[str, Any]:
    today = flow_map.as_of.date()
    gaps = [await gap_json(audit, flow_map, g, today) for g in find_gaps(flow_map, today, expiring_within_days)]
    return {
        "period": _period(flow_map),
        "as_of": format_timestamp(flow_map.as_of),
        "expiring_within_days": expiring_within_days,
        "summary": {
            kind: {
                "gaps": sum(1 for g in gaps if g["kind"] == kind),
                "events": sum(g["events"] for g in gaps if g["kind"] == kind),
            }
            for kind in ("uncovered", "unregistered", "expiring")
        },
        "gaps": gaps,
    }


async def baa_gap_report(audit: AuditLog, query: GapQuery, reader: Any, now: datetime | None = None) -> dict[str, Any]:
    """Flows into or through parties without an effective BAA, flows into
    unregistered systems, and BAAs about to expire; recorded in the chain first."""
    now = now or datetime.now(UTC)
    first, last = period_days(query, now.date())
    flow_map = await load_flow_map(audit, first, last, now)
    await record_read(audit, reader, [GAPS_SUBJECT], data_elements=["AuditEvent"], detail="baa-gaps")
    return await gaps_json(audit, flow_map, query.expiring_within_days)


# --- CSV ----------------------------------------------------------------------------------

FLOW_CSV_COLUMNS = (
    "source_system",
    "destination_system",
    "events",
    "first_seen",
    "last_seen",
    "data_elements",
    "purposes_of_use",
    "event_types",
    "source_organization",
    "source_relationship",
    "source_baa_events",
    "destination_organization",
    "destination_relationship",
    "destination_baa_events",
    "uncovered_events",
)

GAP_CSV_COLUMNS = (
    "kind",
    "reason",
    "party_side",
    "party_system",
    "party_organization",
    "party_relationship",
    "source_system",
    "destination_system",
    "events",
    "patients",
    "first_event",
    "last_event",
    "expires",
)


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in counts.items())


def flow_csv_row(flow: dict[str, Any]) -> list[Any]:
    s, d = flow["source"], flow["destination"]
    return [
        flow["source_system"], flow["destination_system"], flow["events"], flow["first_seen"], flow["last_seen"],
        " ".join(flow["data_elements"]), _counts(flow["purposes_of_use"]), _counts(flow["event_types"]),
        s["organization"] or "", s["relationship"] or "", _counts(s["baa_events"]),
        d["organization"] or "", d["relationship"] or "", _counts(d["baa_events"]), flow["uncovered_events"],
    ]  # fmt: skip


def gap_csv_row(gap: dict[str, Any]) -> list[Any]:
    p = gap["party"]
    return [
        gap["kind"], gap["reason"], gap["party_side"], p["system_id"], p["organization"] or "",
        p["relationship"] or "", gap["source_system"] or "", gap["destination_system"] or "", gap["events"],
        gap["patients"], gap["first_event"] or "", gap["last_event"] or "", gap.get("expires") or "",
    ]  # fmt: skip


async def rows_of(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


def csv_text(header: tuple[str, ...], items: list[dict[str, Any]], to_row: Any) -> str:
    """The whole CSV at once (the command line's output)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(to_row(item) for item in items)
    return out.getvalue()
