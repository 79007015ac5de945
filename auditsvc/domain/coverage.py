"""Coverage: is every interface still auditing?

An interface that stopped emitting is a compliance gap nobody sees in the
events that do arrive. The report lists every known system (seen as source
or destination, or registered) and every emitter with its last event and
its usual rate, flags those silent for longer than a window, and lists the
source -> destination pairs seen for the first time in a period (a new flow
of PHI).

Costs are bounded by the number of systems, emitters and pairs, never by
the log (store/coverage.py): the usual rate is estimated from the time the
last ``k`` events of each span, not by counting a window. "Last event" is by
``occurred_at``, the emitter's clock: an event dated in the future keeps a
system from reading as silent until that time passes (``clock_ahead``).

The service's own ids (``auditsvc``, ``auditsvc:*``) are no interface and
are left out; so are credentials that only ever record the service's own
reads (privacy officers', auditors', admins' tokens, the command line). The
report run is recorded in the chain before the answer leaves.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp
from pydantic import BaseModel, ConfigDict, Field

from ..runtime import AuditLog
from ..settings import Settings
from ..store import coverage as queries
from ..store.events import committed_size
from ..store.session import driver_connection
from ..store.tokens import list_tokens
from .backfill import require_read_model
from .errors import InvalidInput
from .ingest import parse_params
from .periods import DayOrTimestamp, bound
from .read_audit import record_read
from .reserved import is_reserved_system
from .systems import list_registry, unregistered
from .tokens import Role, StoredToken

DURATION_PATTERN = r"^[1-9][0-9]{0,5}[smhd]?$"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_SAMPLE_EVENTS = 100
"""k: the usual rate is the rate of a system's last k events."""
NEW_PAIRS_DEFAULT_DAYS = 7
MAX_EMITTERS = 10_000
CLOCK_AHEAD = timedelta(minutes=5)
REPORT_SUBJECT = Identifier(system="urn:auditsvc:report", value="coverage")
"""The coverage report reads no patient: its audit event names the report."""


def parse_duration(text: str, field: str = "silent_after") -> timedelta:
    match = re.fullmatch(DURATION_PATTERN, text)
    if match is None:
        raise InvalidInput(
            f"{field}: a duration such as 90m, 24h or 7d (a bare number is seconds)",
            [{"loc": [field], "msg": "a duration such as 90m, 24h or 7d", "type": "value_error"}],
        )
    return timedelta(seconds=int(text.rstrip("smhd")) * _UNITS[text[-1] if text[-1] in "smhd" else ""])


@dataclass(frozen=True)
class CoverageConfig:
    silent_after: timedelta
    rate_sample: int = RATE_SAMPLE_EVENTS

    @classmethod
    def from_settings(cls, settings: Settings) -> CoverageConfig:
        return cls(parse_duration(settings.coverage_silent_after, "AUDITSVC_COVERAGE_SILENT_AFTER"))


class CoverageQuery(BaseModel):
    """``GET /v1/reports/coverage`` query: the new-pairs period (``from``/``to``,
    a date or RFC 3339 timestamp, inclusive; default the last 7 days) and the
    silence window (default ``AUDITSVC_COVERAGE_SILENT_AFTER``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: DayOrTimestamp | None = Field(default=None, alias="from")
    to: DayOrTimestamp | None = None
    silent_after: str | None = Field(default=None, pattern=DURATION_PATTERN)


def parse_coverage_query(params: dict[str, str | None]) -> CoverageQuery:
    return parse_params(CoverageQuery, params, "coverage request")


def _internal(system_id: str) -> bool:
    return is_reserved_system(system_id)


def _stamp(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def activity(last: queries.LastEvents | None, now: datetime, window: timedelta) -> dict[str, Any]:
    """Last event, usual rate (events an hour over the last k), silence."""
    if last is None or last.n == 0 or last.last_at is None or last.kth_at is None:
        return {
            "last_event": None,
            "last_seq": None,
            "rate_per_hour": None,
            "never_seen": True,
            "silent": True,
            "clock_ahead": False,
        }
    span = (last.last_at - last.kth_at).total_seconds()
    rate = round((last.n - 1) * 3600 / span, 3) if last.n > 1 and span > 0 else None
    return {
        "last_event": _stamp(last.last_at),
        "last_seq": last.last_seq,
        "rate_per_hour": rate,
        "never_seen": False,
        "silent": now - last.last_at > window,
        "clock_ahead": last.last_at > now + CLOCK_AHEAD,
    }


def _records_service_reads_only(emitter: str, token: StoredToken | None) -> bool:
    if token is not None:
        return token.role != Role.EMITTER.value
    return emitter == "cli" or emitter.startswith(("cli:", "oidc:"))


async def coverage_report(
    audit: AuditLog, query: CoverageQuery, reader: Any, config: CoverageConfig, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    window = parse_duration(query.silent_after) if query.silent_after else config.silent_after
    end = bound(query.to, end=True) if query.to is not None else now
    start = bound(query.from_, end=False) if query.from_ is not None else end - timedelta(days=NEW_PAIRS_DEFAULT_DAYS)
    if start > end:
        raise InvalidInput("'from' is after 'to'", [{"loc": ["from"], "msg": "after 'to'", "type": "value_error"}])
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        as_of = await committed_size(conn, audit.log_id)
        pairs = [p for p in await queries.pairs(conn, audit.log_id, as_of) if not _internal(p.source)]
        seen = sorted({s for p in pairs for s in (p.source, p.destination) if not _internal(s)})
        last = await queries.systems_last(conn, audit.log_id, seen, as_of, config.rate_sample)
        tokens = {t.token_id: t for t in await list_tokens(conn)}
        emitted = await queries.emitters(conn, audit.log_id, MAX_EMITTERS)
        emitters = sorted(
            {e for e in emitted if not _records_service_reads_only(e, tokens.get(e))}
            | {t.token_id for t in tokens.values() if t.role == Role.EMITTER.value}
        )
        emitter_last = await queries.emitters_last(conn, audit.log_id, emitters, as_of, config.rate_sample)
    registry = {e["system_id"]: e for e in await list_registry(audit)}
    systems = []
    for system_id in sorted(set(seen) | {s for s in registry if not _internal(s)}):
        entry = registry.get(system_id) or unregistered(system_id)
        systems.append(
            {
                "system_id": system_id,
                "registered": entry["registered"],
                "name": entry["name"],
                "relationship": entry["relationship"],
                **activity(last.get(system_id), now, window),
            }
        )
    emitter_rows = []
    for emitter in emitters:
        token = tokens.get(emitter)
        row = {
            "emitter": emitter,
            "name": token.name if token else None,
            "systems": list(token.systems) if token else [],
            "revoked": token is not None and token.revoked_at is not None,
            **activity(emitter_last.get(emitter), now, window),
        }
        row["silent"] = row["silent"] and not row["revoked"]  # a revoked credential is expected to be quiet
        emitter_rows.append(row)

    def name(system_id: str) -> str | None:
        return registry[system_id]["name"] if system_id in registry else None

    new = sorted((p for p in pairs if start <= p.first_occurred_at <= end), key=lambda p: p.first_seq)
    await record_read(audit, reader, [REPORT_SUBJECT], data_elements=["AuditEvent"], detail="coverage-report")
    return {
        "as_of": {"tree_size": as_of, "at": format_timestamp(now)},
        "silent_after_seconds": int(window.total_seconds()),
        "rate_sample_events": config.rate_sample,
        "systems": sorted(systems, key=lambda s: (not s["silent"], s["system_id"])),
        "emitters": sorted(emitter_rows, key=lambda e: (not e["silent"], e["emitter"])),
        "new_pairs": {
            "from": format_timestamp(start),
            "to": format_timestamp(end),
            "pairs": [
                {
                    "source_system": p.source,
                    "destination_system": p.destination,
                    "source_name": name(p.source),
                    "destination_name": name(p.destination),
                    "first_event": format_timestamp(p.first_occurred_at),
                    "first_seq": p.first_seq,
                }
                for p in new
            ],
        },
    }


CSV_COLUMNS = (
    "kind",
    "id",
    "destination_system",
    "name",
    "relationship",
    "registered",
    "last_event",
    "rate_per_hour",
    "silent",
    "never_seen",
    "first_event",
)


def coverage_csv(report: dict[str, Any]) -> Iterator[str]:
    """The report as CSV lines: one row per system, emitter and new pair (``kind``)."""
    out = io.StringIO()
    writer = csv.writer(out)

    def line(*cells: Any) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow(["" if c is None else c for c in cells])
        return out.getvalue()

    yield line(*CSV_COLUMNS)
    for s in report["systems"]:
        yield line(
            "system", s["system_id"], None, s["name"], s["relationship"], s["registered"], s["last_event"],
            s["rate_per_hour"], s["silent"], s["never_seen"], None,
        )  # fmt: skip
    for e in report["emitters"]:
        yield line(
            "emitter", e["emitter"], None, e["name"], None, None, e["last_event"],
            e["rate_per_hour"], e["silent"], e["never_seen"], None,
        )  # fmt: skip
    for p in report["new_pairs"]["pairs"]:
        yield line(
            "new_pair", p["source_system"], p["destination_system"], p["source_name"], None, None, None,
            None, None, None, p["first_event"],
        )  # fmt: skip
