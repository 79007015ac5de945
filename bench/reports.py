"""Report latency at clinical volume, against a bare indexed read of the same rows.

1. Fill a log (default 1,000,000 events; ``--events 10000000`` opt-in) with
   the service's own append transaction (``bench._common.fill``) and a
   realistic skew: most patients have a handful of events, some tens or
   hundreds, a few "frequent flyers" 5,000 or more (``BANDS``). Every event
   carries the patient's hospital MRN and one or two of their other
   identifiers. ``--keep DIR`` keeps the filled log (embedded PostgreSQL data
   directory, the service's data directory and a manifest) for ``--reuse
   DIR``, which migrates it to head (timed: the upgrade path of a stored log)
   and measures again without filling.
2. Bytes per event: every table of the database with its indexes and TOAST
   (partitions summed into their parent), after ``VACUUM ANALYZE``.
3. The real service (``python -m auditsvc serve``) and a privacy-officer
   token. For ``--patients`` random patients of each measured band, in random
   order, one after the other:
   * the patient report over HTTP, ``POST /v1/reports/patient-access`` by
     the MRN with no range and the default limit: the systems summary and
     the first page, as a privacy officer's first look; each report also
     appends its own audit event, as in production;
   * the bare indexed read of the same rows on one asyncpg connection with
     ``plan_cache_mode = force_custom_plan``: every event of the patient's
     identifiers through the lookup index, ``(seq, occurred_at, record)``,
     no JSON, no HTTP (what PostgreSQL alone costs for the rows a report
     covers).
   The two alternate which goes first. p50/p95 per band and the ratio
   report / bare read.
4. The FHIR AuditEvent search (ITI-81, bench/reports_fhir.py): by patient
   identifier and date for the same patients, by source and date, by date
   alone with ``_count``, and next pages.
5. The by-system report (``POST /v1/reports/system-access``) for each source
   system, over one hour and over the whole log, when the service has it
   (skipped with a note otherwise); the by-actor report for a few interface
   channels, the activity record, and the busiest system's whole report as
   streamed CSV (rows/s and the service's peak memory before and after).

Targets (issue 14): report p95 <= 25 ms for a patient with <= 500 events,
<= 150 ms with 5,000, flat from 1M to 10M; report / bare read <= 3x at p95.

    python -m bench.reports [--events N] [--quick] [--patients K] [--keep DIR | --reuse DIR]
                            [--workers W] [--database-url DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from auditsvc.keys import ServerKeys, load_keys
from auditsvc.store.engine import asyncpg_dsn
from auditsvc.store.migrate import upgrade_head

from ._common import (
    BENCH_LOG_NAME,
    REPO,
    SOURCE_SYSTEM_IDS,
    DatabaseServer,
    EventFactory,
    _admin,
    bench_settings,
    code_facts,
    database_server,
    describe_url,
    fill,
    machine_facts,
    percentile,
    print_fill_progress,
    print_table,
    server_facts,
    service_env,
    synthetic_patient,
    with_database,
    write_results,
)
from .ingest import create_token, start_service
from .reports_documents import measure_documents
from .reports_fhir import fhir_rows, filled_span, measure_fhir

DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 30_000
DEFAULT_PATIENTS = 30  # measured per band
QUICK_PATIENTS = 5
WARMUP_REPORTS = 20  # untimed, default: the service's pool connections reach their cached (generic) plans
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Band:
    name: str
    low: int  # events per patient, inclusive
    high: int
    per_million: int | None  # patients per 1M events; None: the rest of the log
    measured: bool = True


# Per 1M events: ~79,000 patients with 1-10 events (43% of the events), 5,000
# with 11-100 (28%), 300 with 101-500 (9%), 30 with 501-4,999 (8%) and 20
# frequent flyers with 5,000-7,000 (12%): about 84,000 patients. Scaled with
# the log; the fixed-size bands keep a few patients in a small (--quick) log.
BANDS = (
    Band("5000+", 5000, 7000, 20),
    Band("501-4999", 501, 4999, 30, measured=False),
    Band("101-500", 101, 500, 300),
    Band("11-100", 11, 100, 5000),
    Band("1-10", 1, 10, None),
)
MINIMUM_PATIENTS = {"5000+": 2, "501-4999": 1, "101-500": 5, "11-100": 20}


# ------------------------------------------------------------ the population


@dataclass(frozen=True)
class Population:
    """Events per patient (patient ``n`` has ``counts[n]``) and each band's patients."""

    counts: array  # type: ignore[type-arg]
    bands: dict[str, range]  # patient numbers of each band, contiguous

    @property
    def events(self) -> int:
        return sum(self.counts)


def plan_population(events: int, seed: int) -> Population:
    """How many events each patient gets: the fixed-size bands first, scaled
    with ``events``, then patients of 1-10 events for the rest. A band that
    would leave less than a third of the log to the 1-10 band is shrunk or
    dropped (a small log has no room for frequent flyers)."""
    rng = random.Random(seed)
    counts = array("I")
    bands: dict[str, range] = {}
    left = events
    for band in BANDS:
        first = len(counts)
        if band.per_million is None:
            while left > 0:
                n = min(rng.randint(band.low, band.high), left)
                counts.append(n)
                left -= n
        else:
            wanted = max(round(band.per_million * events / 1_000_000), MINIMUM_PATIENTS.get(band.name, 0))
            for _ in range(wanted):
                n = rng.randint(band.low, band.high)
                if left - n < events // 3:
                    break
                counts.append(n)
                left -= n
        bands[band.name] = range(first, len(counts))
    return Population(counts, bands)


class SkewedEvents(EventFactory):
    """Events of ``population``'s patients, each patient getting exactly its
    count, interleaved in random order over the log's time."""

    def __init__(self, population: Population, seed: int) -> None:
        super().__init__(seed, patients=1)
        stream = array("I")
        for patient, count in enumerate(population.counts):
            stream.extend([patient] * count)
        random.Random(seed + 1).shuffle(stream)  # type: ignore[arg-type]
        self._stream = stream
        self._next = 0

    def events(self, count: int) -> list[dict[str, Any]]:
        chosen = self._stream[self._next : self._next + count]
        self._next += len(chosen)
        return [self.event(synthetic_patient(p)) for p in chosen]


# ------------------------------------------------------------ the store


@dataclass(frozen=True)
class Store:
    url: str
    data_dir: Path
    log_id: int
    events: int
    seed: int
    fill: dict[str, Any] | None  # None when reused
    migration: dict[str, Any] | None  # when reused: revisions and seconds


async def _revision(url: str) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await conn.fetchval("SELECT version_num FROM alembic_version"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def _log_id(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", BENCH_LOG_NAME))
    finally:
        await conn.close()


def migrate(url: str, data_dir: Path) -> dict[str, Any]:
    """Upgrade a kept log as an operator would: ``auditsvc migrate`` (the
    migrations, and whatever the CLI builds after them), timed."""
    before = asyncio.run(_revision(url))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "auditsvc", "migrate"],
        env=service_env(url, data_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=4 * 3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"auditsvc migrate failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return {"from": before, "to": asyncio.run(_revision(url)), "seconds": round(seconds, 2)}


@contextmanager
def prepared_store(server: DatabaseServer, args: argparse.Namespace, events: int, work: Path) -> Iterator[Store]:
    """A filled log: reused from ``--reuse DIR`` (migrated to head), or a new
    database filled now, kept for ``--reuse`` with ``--keep DIR`` and dropped
    otherwise."""
    if args.reuse:
        manifest = json.loads((args.reuse / MANIFEST).read_text())
        url = with_database(server.url, manifest["database"])
        data_dir = args.reuse / "data"
        yield Store(
            url, data_dir, manifest["log_id"], manifest["events"], manifest["seed"], None, migrate(url, data_dir)
        )
        return
    name = f"bench_reports_{secrets.token_hex(4)}"
    asyncio.run(_admin(server.url, f"CREATE DATABASE {name}"))
    url = with_database(server.url, name)
    data_dir = (args.keep / "data") if args.keep else (work / "data")
    try:
        upgrade_head(bench_settings(url, data_dir), url)
        population = plan_population(events, args.seed)
        print(f"reports: filling {events:,} events for {len(population.counts):,} patients", file=sys.stderr)
        filled = asyncio.run(
            fill(
                url,
                events,
                args.seed,
                data_dir,
                factory=SkewedEvents(population, args.seed),
                progress=print_fill_progress,
                vacuum=(),
            )
        )
        if args.keep:
            manifest = {
                "database": name,
                "events": events,
                "seed": args.seed,
                "log_id": filled["log_id"],
                "filled": filled,
                "filled_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                "code": code_facts(),
            }
            (args.keep / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        yield Store(url, data_dir, filled["log_id"], events, args.seed, filled, None)
    finally:
        if not args.keep:
            asyncio.run(_admin(server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# ------------------------------------------------------------ bytes per event

_SIZES_SQL = """
SELECT c.relname AS table_name,
       sum(pg_relation_size(p.relid)) AS heap,
       sum(coalesce(pg_total_relation_size(nullif(l.reltoastrelid, 0)), 0)) AS toast,
       sum(pg_indexes_size(p.relid)) AS indexes,
       sum(pg_total_relation_size(p.relid)) AS total
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf AND c.relkind = 'p'
    UNION ALL
    SELECT c.oid::regclass WHERE c.relkind = 'r'
) p
JOIN pg_class l ON l.oid = p.relid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
GROUP BY c.relname
ORDER BY total DESC
"""


# Whether the stored records are compressed, on a ~1% sample of the events' pages.
_RECORDS_SQL = """
SELECT count(*) AS rows,
       count(*) FILTER (WHERE pg_column_compression(record) IS NOT NULL) AS compressed,
       avg(octet_length(record)) AS text_bytes,
       avg(pg_column_size(record)) AS stored_bytes
FROM events TABLESAMPLE SYSTEM (1) REPEATABLE (1)
"""


async def storage(url: str, events: int) -> dict[str, Any]:
    """Bytes of every table (heap, TOAST, indexes; partitions summed into their
    parent) and per event, after ``VACUUM ANALYZE``."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetch(_SIZES_SQL)
        records = await conn.fetchrow(_RECORDS_SQL)
    finally:
        await conn.close()
    tables = {
        r["table_name"]: {
            "heap": int(r["heap"]),
            "toast": int(r["toast"]),
            "indexes": int(r["indexes"]),
            "total": int(r["total"]),
            "per_event": round(int(r["total"]) / events, 1),
        }
        for r in rows
    }
    total = sum(t["total"] for t in tables.values())
    return {
        "tables": tables,
        "total": total,
        "per_event": round(total / events, 1),
        "records_sampled": {
            "rows": records["rows"],
            "compressed": records["compressed"],
            "avg_text_bytes": round(float(records["text_bytes"] or 0), 1),
            "avg_stored_bytes": round(float(records["stored_bytes"] or 0), 1),
        },
    }


# ------------------------------------------------------------ measuring

# The bare read: every event that carries one of the patient's identifiers,
# through the patient lookup index, with a custom plan (the values known);
# event_ids names each one's seq, which names its partition (migration 0010).
_BARE_SQL = """
SELECT e.seq, e.occurred_at, e.record
FROM event_ids i JOIN events e ON e.log_id = i.log_id AND e.seq = i.seq
WHERE i.log_id = $1
  AND i.event_id IN (SELECT event_id FROM event_identifiers WHERE log_id = $1 AND id_hmac = ANY($2::bytea[]))
"""
REPORT_LIMIT = 100  # the report's default page
REPORTS_WAIT_S = 4 * 3600  # for a just-upgraded log's reports to answer


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(samples, 0.5) * 1000, 2), "p95": round(percentile(samples, 0.95) * 1000, 2)}


def _report_body(patient: int) -> dict[str, Any]:
    mrn = synthetic_patient(patient)[0]
    return {"identifier": {"system": mrn["system"], "value": mrn["value"]}}


def _hmacs(keys: ServerKeys, patient: int) -> list[bytes]:
    return [keys.identifier_hmac(i["system"], i["value"]) for i in synthetic_patient(patient)]


@dataclass
class Measured:
    bands: dict[str, BandSamples]
    reports_unavailable_s: float  # waited for the first report to answer (0 unless just upgraded)
    empty: list[float]  # reports on patients the log has never seen: the fixed cost of a report


@dataclass
class BandSamples:
    report: list[float]
    bare: list[float]
    events: list[int]  # events per patient now, from the bare read (filled, plus earlier reports' audit events)
    page_mismatches: int = 0


async def wait_for_reports(client: httpx.AsyncClient, patient: int) -> float:
    """Seconds until the service answers a report: after an upgrade it may
    answer 503 until it has built what reports need for the stored rows."""
    started = time.perf_counter()
    while True:
        response = await client.post("/v1/reports/patient-access", json=_report_body(patient))
        if response.status_code != 503:
            if response.status_code != 200:
                raise RuntimeError(f"patient report answered {response.status_code}: {response.text[:300]}")
            return round(time.perf_counter() - started, 2)
        if time.perf_counter() - started > REPORTS_WAIT_S:
            raise RuntimeError(f"reports still unavailable after {REPORTS_WAIT_S} s: {response.text[:300]}")
        await asyncio.sleep(1.0)


async def _report(client: httpx.AsyncClient, patient: int) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    response = await client.post("/v1/reports/patient-access", json=_report_body(patient))
    seconds = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"patient report answered {response.status_code}: {response.text[:300]}")
    return seconds, response.json()


async def _bare(conn: asyncpg.Connection, log_id: int, hmacs: list[bytes]) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = await conn.fetch(_BARE_SQL, log_id, hmacs)
    return time.perf_counter() - t0, len(rows)


async def measure_patients(
    base_url: str,
    token: str,
    url: str,
    keys: ServerKeys,
    log_id: int,
    chosen: dict[str, list[int]],
    seed: int,
    unknown: int,
    warmup: int = WARMUP_REPORTS,
) -> Measured:
    """``unknown``: the first patient number the log has never seen."""
    rng = random.Random(seed)
    order = [(band, p) for band, patients in chosen.items() for p in patients]
    rng.shuffle(order)
    samples = {band: BandSamples([], [], []) for band in chosen}
    empty: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as client:
            waited = await wait_for_reports(client, order[0][1])
            for _, patient in [rng.choice(order) for _ in range(warmup)]:
                await _report(client, patient)
                await _bare(conn, log_id, _hmacs(keys, patient))
            for i, (band, patient) in enumerate(order):
                hmacs = _hmacs(keys, patient)
                if i % 2:
                    report_s, body = await _report(client, patient)
                    bare_s, rows = await _bare(conn, log_id, hmacs)
                    rows_seen = rows - 1  # the report's own audit event came after its snapshot
                else:
                    bare_s, rows = await _bare(conn, log_id, hmacs)
                    report_s, body = await _report(client, patient)
                    rows_seen = rows
                s = samples[band]
                s.report.append(report_s)
                s.bare.append(bare_s)
                s.events.append(rows)
                if len(body["events"]) != min(REPORT_LIMIT, rows_seen):
                    s.page_mismatches += 1
                # The same request for a patient with no events: HTTP, the
                # caller's token, the identifier walk and the report's own
                # audit event, without any rows to read.
                empty_s, body = await _report(client, unknown + i)
                empty.append(empty_s)
                if body["events"] or body["systems"]:
                    raise RuntimeError("a report on a patient the log has never seen found events")
    finally:
        await conn.close()
    return Measured(samples, waited, empty)


BENCH_CHANNELS = ("ADT_IN", "ORU_LAB", "FHIR_SYNC")  # actors "mirth/<channel>" of bench._common's events


def _has_path(base_url: str, path: str) -> bool:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.get("/openapi.json")
        return response.status_code == 200 and path in response.json().get("paths", {})


async def _log_span(url: str, log_id: int) -> tuple[datetime, datetime]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT occurred_at FROM events WHERE log_id = $1 ORDER BY seq LIMIT 1) AS first, "
            "(SELECT occurred_at FROM events WHERE log_id = $1 ORDER BY seq DESC LIMIT 1) AS last",
            log_id,
        )
        return row["first"], row["last"]
    finally:
        await conn.close()


async def measure_by_system(base_url: str, token: str, span: tuple[datetime, datetime], repeat: int) -> dict[str, Any]:
    """The by-system report for each source system: one hour in the middle of
    the log, and the whole log."""
    middle = span[0] + (span[1] - span[0]) / 2
    hour = {"from": middle.isoformat(), "to": (middle + timedelta(hours=1)).isoformat()}
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as client:
        for label, extra in (("one hour", hour), ("whole log", {})):
            times: list[float] = []
            for _ in range(repeat):
                for system in SOURCE_SYSTEM_IDS:
                    t0 = time.perf_counter()
                    response = await client.post("/v1/reports/system-access", json={"system_id": system, **extra})
                    times.append(time.perf_counter() - t0)
                    if response.status_code != 200:
                        raise RuntimeError(f"by-system report answered {response.status_code}: {response.text[:300]}")
            out[label] = {"requests": len(times), **_ms(times)}
    return out


async def measure_by_actor_and_activity(
    base_url: str, token: str, span: tuple[datetime, datetime], repeat: int
) -> dict[str, Any]:
    """The by-actor report for each interface channel (one hour, whole log)
    and the activity review record (whole log, first page)."""
    middle = span[0] + (span[1] - span[0]) / 2
    hour = {"from": middle.isoformat(), "to": (middle + timedelta(hours=1)).isoformat()}
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    calls = [
        *((f"by-actor, {label}", "/v1/reports/actor-access", {"actor_id": f"mirth/{c}", **extra})
          for label, extra in (("one hour", hour), ("whole log", {})) for c in BENCH_CHANNELS),
        *(("activity record", "/v1/reports/activity", {}) for _ in range(len(BENCH_CHANNELS))),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as client:
        for label, path, body in calls * repeat:
            t0 = time.perf_counter()
            response = await client.post(path, json=body)
            out.setdefault(label, []).append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return {label: {"requests": len(times), **_ms(times)} for label, times in out.items()}


async def measure_coverage(base_url: str, token: str, repeat: int) -> dict[str, Any]:
    """The coverage report (every system and emitter, new pairs of the last week), ``repeat`` x 5 times."""
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        for _ in range(repeat * 5):
            t0 = time.perf_counter()
            response = await c.get("/v1/reports/coverage")
            times.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"coverage answered {response.status_code}: {response.text[:300]}")
    return {"coverage": {"requests": len(times), **_ms(times)}}


# The registry the flow reports judge against: the hospital's own systems,
# an HIE gateway run by a business associate without a BAA (flows into and
# through it are gaps), and the billing service left unregistered.
BENCH_REGISTRY = {
    **{s: {"name": s, "organization": "Bench Hospital", "relationship": "workforce", "baa": {"status": "not_required"}}
       for s in ("epic-adt", "lab-lis", "rad-ris", "pharm-rx")},
    "hie-gateway": {"name": "HIE gateway", "organization": "Regional HIE", "relationship": "business_associate",
                    "baa": {"status": "none"}},
}  # fmt: skip


async def measure_flows(
    base_url: str, token: str, admin: str, span: tuple[datetime, datetime], repeat: int
) -> dict[str, Any]:
    """The flow map (one day, the whole log) and the BAA gaps (the whole log:
    every gap's patients counted, at most 100,000 events a gap), ``repeat`` x 3 times."""
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=600) as a:
        for system_id, entry in BENCH_REGISTRY.items():
            (await a.put(f"/v1/systems/{system_id}", json=entry)).raise_for_status()
    first, last = span[0].date().isoformat(), span[1].date().isoformat()
    calls = [
        ("flow map, one day", "POST", "/v1/reports/flows", {"json": {"from": last, "to": last}}),
        ("flow map, whole log", "POST", "/v1/reports/flows", {"json": {"from": first, "to": last}}),
        ("BAA gaps, whole log", "GET", "/v1/reports/baa-gaps", {"params": {"from": first, "to": last}}),
    ]
    out: dict[str, list[float]] = {}
    gaps: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        for label, method, path, kw in calls * (repeat * 3):
            t0 = time.perf_counter()
            response = await c.request(method, path, **kw)
            out.setdefault(label, []).append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            if path.endswith("baa-gaps"):
                body = response.json()
                gaps = {"gaps": len(body["gaps"]), "events_in_gaps": sum(g["events"] for g in body["gaps"]),
                        "exact": all(g["patients_exact"] for g in body["gaps"])}  # fmt: skip
    return {label: {"requests": len(times), **_ms(times)} for label, times in out.items()} | {"flow gaps": gaps}


async def measure_break_glass(base_url: str, token: str, repeat: int) -> dict[str, Any]:
    """The break-glass review: ``repeat`` x 5 verdicts on the oldest unreviewed
    accesses (POST /v1/reviews), then the queue's first page (100) by status."""
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        queue = await c.get("/v1/reviews/break-glass", params={"status": "unreviewed", "limit": repeat * 5})
        if queue.status_code != 200:
            raise RuntimeError(f"break-glass queue answered {queue.status_code}: {queue.text[:300]}")
        for item in queue.json()["items"]:
            t0 = time.perf_counter()
            response = await c.post(
                "/v1/reviews", json={"event_id": item["event"]["event_id"], "verdict": "appropriate"}
            )
            out.setdefault("break-glass review (POST)", []).append(time.perf_counter() - t0)
            if response.status_code != 201:
                raise RuntimeError(f"review answered {response.status_code}: {response.text[:300]}")
        for _ in range(repeat * 2):
            for status in ("unreviewed", "reviewed", "overdue", "all"):
                t0 = time.perf_counter()
                response = await c.get("/v1/reviews/break-glass", params={"status": status, "limit": 100})
                out.setdefault(f"break-glass queue, {status}", []).append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(f"break-glass queue answered {response.status_code}: {response.text[:300]}")
    return {label: {"requests": len(times), **_ms(times)} for label, times in out.items()}


def _peak_rss(pid: int) -> int:
    """The peak resident set (VmHWM) of a process and its descendants, bytes (Linux /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        proc = Path(f"/proc/{current}")
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
        for task in (proc / "task").iterdir():
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            pending.extend(int(c) for c in children)
    return total


def measure_csv_export(base_url: str, token: str, pid: int) -> dict[str, Any]:
    """The busiest source system's whole by-system report as streamed CSV:
    rows, bytes, seconds, and the service's peak resident memory before and
    after (a streamed export should leave it where it was)."""
    before = _peak_rss(pid)
    rows = size = 0
    t0 = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=3600) as client:
        body = {"system_id": SOURCE_SYSTEM_IDS[0]}
        with client.stream("POST", "/v1/reports/system-access?format=csv", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"CSV export answered {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
    seconds = time.perf_counter() - t0
    after = _peak_rss(pid)
    return {
        "system_id": SOURCE_SYSTEM_IDS[0],
        "rows": rows - 1,
        "mb": round(size / 1e6, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round((rows - 1) / seconds) if seconds else None,
        "service_peak_rss_mb_before": round(before / 1e6, 1),
        "service_peak_rss_mb_after": round(after / 1e6, 1),
    }


def choose_patients(population: Population, per_band: int, seed: int) -> dict[str, list[int]]:
    rng = random.Random(seed + 2)
    chosen: dict[str, list[int]] = {}
    for band in BANDS:
        patients = population.bands.get(band.name, range(0))
        if band.measured and len(patients):
            chosen[band.name] = rng.sample(patients, min(per_band, len(patients)))
    return chosen


def summarise(samples: dict[str, BandSamples], chosen: dict[str, list[int]], population: Population) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for band, s in samples.items():
        report, bare = _ms(s.report), _ms(s.bare)
        filled = [population.counts[p] for p in chosen[band]]
        out[band] = {
            "patients": len(s.report),
            "filled_min_median_max": [min(filled), int(percentile(filled, 0.5)), max(filled)],
            "rows_read_min_median_max": [min(s.events), int(percentile(s.events, 0.5)), max(s.events)],
            "report_ms": report,
            "bare_read_ms": bare,
            "ratio_p50": round(report["p50"] / bare["p50"], 2) if bare["p50"] else None,
            "ratio_p95": round(report["p95"] / bare["p95"], 2) if bare["p95"] else None,
            "page_mismatches": s.page_mismatches,
        }
    return out


# ------------------------------------------------------------ main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help=f"log size (default {DEFAULT_EVENTS:,})")
    parser.add_argument("--quick", action="store_true", help=f"small smoke run ({QUICK_EVENTS:,} events)")
    parser.add_argument("--patients", type=int, default=None, help=f"patients per band (default {DEFAULT_PATIENTS})")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    parser.add_argument(
        "--warmup", type=int, default=WARMUP_REPORTS, help=f"untimed reports first (default {WARMUP_REPORTS})"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="owner (superuser) DSN of an existing server (env BENCH_DATABASE_URL); default: embedded pgserver",
    )
    parser.add_argument(
        "--plan-cache-mode",
        choices=("auto", "force_generic_plan"),
        default="auto",
        help="PostgreSQL's plan_cache_mode for the service's sessions; force_generic_plan runs every "
        "prepared statement on its generic plan from the first execution (a plan that walks the log shows)",
    )
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--keep", type=Path, help="keep the filled log in DIR (a new directory) for --reuse")
    store.add_argument("--reuse", type=Path, help="measure the log kept in DIR by --keep (migrated to head first)")
    args = parser.parse_args(argv)
    if args.events is not None and args.events <= 0:
        parser.error("--events must be positive")
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: not empty (use --reuse {args.keep} to measure it again)")
    if args.reuse and not (args.reuse / MANIFEST).is_file():
        parser.error(f"--reuse {args.reuse}: no {MANIFEST} there (fill one with --keep)")
    if args.reuse and args.events is not None:
        parser.error("--reuse measures the log as it was filled; --events does not apply")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    per_band = args.patients or (QUICK_PATIENTS if args.quick else DEFAULT_PATIENTS)
    store_dir: Path | None = args.keep or args.reuse
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    pgdata = store_dir / "pg" if store_dir and not args.database_url else None
    work = Path(tempfile.mkdtemp(prefix="asvc-bench-reports-"))
    try:
        with database_server(args.database_url, pgdata) as server, prepared_store(server, args, events, work) as store:
            population = plan_population(store.events, store.seed)
            sizes = asyncio.run(storage(store.url, store.events))
            keys = load_keys(bench_settings(store.url, store.data_dir))
            env = service_env(store.url, store.data_dir)
            asyncio.run(_set_plan_cache_mode(store.url, args.plan_cache_mode))
            service = start_service(env, args.workers, work / "serve.log")
            try:
                token = create_token(env, "privacy_officer")
                chosen = choose_patients(population, per_band, args.seed)
                print(f"reports: measuring {sum(map(len, chosen.values()))} patients", file=sys.stderr)
                measured = asyncio.run(
                    measure_patients(
                        service.base_url,
                        token,
                        store.url,
                        keys,
                        store.log_id,
                        chosen,
                        args.seed,
                        # Fresh numbers each run: a report records its patient in the log,
                        # so a kept log has seen the previous runs' "unknown" patients.
                        len(population.counts) + secrets.randbelow(10**6) * 10_000,
                        args.warmup,
                    )
                )
                by_system: dict[str, Any]
                if _has_path(service.base_url, "/v1/reports/system-access"):
                    span = asyncio.run(_log_span(store.url, store.log_id))
                    by_system = asyncio.run(measure_by_system(service.base_url, token, span, 2 if args.quick else 3))
                    by_system |= asyncio.run(
                        measure_by_actor_and_activity(service.base_url, token, span, 2 if args.quick else 3)
                    )
                    by_system |= asyncio.run(measure_coverage(service.base_url, token, 2 if args.quick else 3))
                    by_system |= asyncio.run(measure_break_glass(service.base_url, token, 2 if args.quick else 3))
                    if _has_path(service.base_url, "/v1/reports/flows"):
                        admin = create_token(env, "admin")
                        by_system |= asyncio.run(
                            measure_flows(service.base_url, token, admin, span, 2 if args.quick else 3)
                        )
                    csv_export: dict[str, Any] | None = measure_csv_export(service.base_url, token, service.process.pid)
                else:
                    by_system = {"skipped": "the service has no POST /v1/reports/system-access yet"}
                    csv_export = None
                documents = asyncio.run(measure_documents(service.base_url, token, chosen, _report_body))
                fhir_span = asyncio.run(filled_span(store.url, store.log_id))
                fhir = asyncio.run(measure_fhir(service.base_url, token, chosen, fhir_span, 2 if args.quick else 3))
            finally:
                service.stop()
            facts = asyncio.run(_server_facts(store.url))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bands = summarise(measured.bands, chosen, population)
    payload = {
        "benchmark": "reports",
        "server": {"label": server.label, "url": describe_url(server.url), **facts},
        "events": store.events,
        "patients": len(population.counts),
        "population": {name: len(r) for name, r in population.bands.items()},
        "fill": store.fill,
        "reused": str(args.reuse) if args.reuse else None,
        "plan_cache_mode": args.plan_cache_mode,
        "migration": store.migration,
        "reports_unavailable_s": measured.reports_unavailable_s,
        "storage": sizes,
        "bands": bands,
        "empty_report_ms": _ms(measured.empty),
        "by_system": by_system,
        "csv_export": csv_export,
        "documents": documents,
        "fhir": fhir,
        "service_workers": args.workers,
        "machine": machine_facts(),
        "code": code_facts(),
    }
    _print(payload)
    name = f"reports-{server.label}"
    if args.quick:
        name += "-quick"
    elif store.events != DEFAULT_EVENTS:
        name += f"-{store.events}ev"
    print(f"results: {write_results(name, payload)}")
    return 1 if any(b["page_mismatches"] for b in bands.values()) else 0


async def _set_plan_cache_mode(url: str, mode: str) -> None:
    """Set (``auto``: reset) ``plan_cache_mode`` for every new session of the log's database."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        database = await conn.fetchval("SELECT current_database()")
        action = "RESET plan_cache_mode" if mode == "auto" else f"SET plan_cache_mode = {mode}"
        await conn.execute(f'ALTER DATABASE "{database}" {action}')
    finally:
        await conn.close()


async def _server_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await server_facts(conn)
    finally:
        await conn.close()


def _print(payload: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("log", f"{payload['events']:,} events, {payload['patients']:,} patients"),
    ]
    if payload["fill"]:
        fill_s = payload["fill"]
        rows.append(("fill", f"{fill_s['seconds']:,} s ({payload['events'] / fill_s['seconds']:,.0f} events/s)"))
    if payload.get("plan_cache_mode", "auto") != "auto":
        rows.append(("plan_cache_mode of the service's sessions", payload["plan_cache_mode"]))
    if payload["migration"]:
        m = payload["migration"]
        rows.append(("reused; auditsvc migrate", f"{m['from']} -> {m['to']} in {m['seconds']} s"))
    if payload["reports_unavailable_s"]:
        rows.append(("reports answered 503 after start for", f"{payload['reports_unavailable_s']} s"))
    storage_ = payload["storage"]
    rows.append(("bytes per event, all tables and indexes", f"{storage_['per_event']:,.0f}"))
    rec = storage_["records_sampled"]
    rows.append(
        (
            f"  records sampled: {rec['compressed']:,} of {rec['rows']:,} compressed",
            f"{rec['avg_text_bytes']:,.0f} B text, {rec['avg_stored_bytes']:,.0f} B stored",
        )
    )
    for name, t in storage_["tables"].items():
        if t["total"] >= 1 << 20:
            detail = f"heap {t['heap'] >> 20} + toast {t['toast'] >> 20} + indexes {t['indexes'] >> 20} MiB"
            rows.append((f"  {name}: {detail}", f"{t['per_event']:,.0f}"))
    for band, b in payload["bands"].items():
        r, bare = b["report_ms"], b["bare_read_ms"]
        lo, med, hi = b["filled_min_median_max"]
        label = f"band {band}: {b['patients']} of {payload['population'][band]:,} patients"
        rows.append((label, f"{lo} / {med} / {hi} events filled (min / median / max)"))
        rows.append(("  report p50 / p95", f"{r['p50']:,.1f} / {r['p95']:,.1f} ms"))
        rows.append(("  bare indexed read p50 / p95", f"{bare['p50']:,.1f} / {bare['p95']:,.1f} ms"))
        rows.append(("  ratio report / bare p50 / p95", f"{b['ratio_p50']}x / {b['ratio_p95']}x"))
        if b["page_mismatches"]:
            rows.append((f"  MISMATCH {band}", f"{b['page_mismatches']} first pages of the wrong length"))
    empty = payload["empty_report_ms"]
    rows.append(("report on a patient with no events p50 / p95", f"{empty['p50']:,.1f} / {empty['p95']:,.1f} ms"))
    by_system = payload["by_system"]
    if "skipped" in by_system:
        rows.append(("by-system report", f"skipped: {by_system['skipped']}"))
    else:
        for label, t in by_system.items():
            if label == "flow gaps":
                rows.append((f"  BAA gaps: {t['gaps']} gaps, {t['events_in_gaps']:,} events", f"exact: {t['exact']}"))
                continue
            name = (
                label
                if label.startswith(("by-actor", "activity", "coverage", "break-glass", "flow map", "BAA gaps"))
                else f"by-system report, {label}"
            )
            rows.append((f"{name} ({t['requests']} requests) p50 / p95", f"{t['p50']} / {t['p95']} ms"))
    export = payload.get("csv_export")
    if export:
        rows.append(
            (
                f"CSV export of {export['system_id']}: {export['rows']:,} rows, {export['mb']} MB",
                f"{export['seconds']} s ({export['rows_per_s']:,} rows/s)",
            )
        )
        rss = f"{export['service_peak_rss_mb_before']} -> {export['service_peak_rss_mb_after']} MB"
        rows.append(("  service peak RSS before -> after", rss))
    rows.extend(fhir_rows(payload.get("fhir") or {}))
    print_table(f"bench.reports: {payload['events']:,} events, {payload['server']['label']} PostgreSQL", rows)


if __name__ == "__main__":
    sys.exit(main())
