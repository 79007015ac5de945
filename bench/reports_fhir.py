"""The FHIR AuditEvent search (ITI-81), measured by bench/reports.py.

Over the same filled log and service, as a privacy officer, first pages of
a ``searchset`` Bundle (default ``_count`` 100 unless said), each search
also appending its own Audit Log Used event, as in production:

* by patient identifier and date (``POST /fhir/AuditEvent/_search``,
  ``patient.identifier=<MRN system>|<MRN>`` and the whole log's dates), for
  the patients bench/reports.py chose in each band: p50/p95 per band, the
  same patients as the patient-access report;
* by source and date (``source.identifier``), each source system, over one
  hour and over the whole log;
* by date alone, one hour and the whole log, ``_count`` 100, and the whole
  log at ``_count`` 1000; then three ``next`` pages of the whole-log search
  (a page's cost under one snapshot).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx

from auditsvc.store.engine import asyncpg_dsn

from ._common import SOURCE_SYSTEM_IDS, percentile, synthetic_patient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(samples, 0.5) * 1000, 2), "p95": round(percentile(samples, 0.95) * 1000, 2)}


def _dates(start: datetime, end: datetime) -> list[tuple[str, str]]:
    return [("date", f"ge{start.isoformat()}"), ("date", f"le{end.isoformat()}")]


FILLED_SPAN_SQL = """
SELECT min(occurred_at) AS first, max(occurred_at) AS last
FROM event_facts WHERE log_id = $1 AND source_system <> 'auditsvc'
"""


async def filled_span(url: str, log_id: int) -> tuple[datetime, datetime]:
    """When the filled events happened (the service's own events, appended
    at the time of the run, left out: the middle hour must hold fill events)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(FILLED_SPAN_SQL, log_id)
        return row["first"], row["last"]
    finally:
        await conn.close()


async def measure_fhir(
    base_url: str, token: str, chosen: dict[str, list[int]], span: tuple[datetime, datetime], repeat: int
) -> dict[str, Any]:
    """p50/p95 of each kind of FHIR search (first pages, and next pages);
    ``span`` is ``filled_span``'s."""
    out: dict[str, list[float]] = {}
    entries: dict[str, list[int]] = {}
    middle = span[0] + (span[1] - span[0]) / 2
    hour = _dates(middle, middle + timedelta(hours=1))
    whole = _dates(span[0] - timedelta(seconds=1), span[1] + timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as client:

        async def timed(label: str, params: list[tuple[str, str]]) -> dict[str, Any]:
            t0 = time.perf_counter()
            response = await client.post("/fhir/AuditEvent/_search", content=urlencode(params), headers=FORM)
            out.setdefault(label, []).append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"FHIR search answered {response.status_code}: {response.text[:300]}")
            bundle: dict[str, Any] = response.json()
            entries.setdefault(label, []).append(len(bundle.get("entry", [])))
            return bundle

        for band, patients in chosen.items():
            for patient in patients:
                mrn = synthetic_patient(patient)[0]
                await timed(
                    f"by patient + date, band {band}",
                    [("patient.identifier", f"{mrn['system']}|{mrn['value']}"), *whole],
                )
        for _ in range(repeat):
            for system in SOURCE_SYSTEM_IDS:
                await timed("by source + date, one hour", [("source.identifier", system), *hour])
                await timed("by source + date, whole log", [("source.identifier", system), *whole])
            for _ in range(len(SOURCE_SYSTEM_IDS)):
                await timed("by date only, one hour, _count 100", hour)
                await timed("by date only, whole log, _count 1000", [*whole, ("_count", "1000")])
                bundle = await timed("by date only, whole log, _count 100", whole)
                for _ in range(3):
                    following = next((li["url"] for li in bundle.get("link", []) if li["relation"] == "next"), None)
                    if following is None:
                        break
                    t0 = time.perf_counter()
                    response = await client.get(following)
                    out.setdefault("by date only, a next page, _count 100", []).append(time.perf_counter() - t0)
                    if response.status_code != 200:
                        raise RuntimeError(f"FHIR next page answered {response.status_code}: {response.text[:300]}")
                    bundle = response.json()
    return {
        label: {"requests": len(times), **_ms(times), "entries_max": max(entries.get(label, [0]))}
        for label, times in out.items()
    }


def fhir_rows(fhir: dict[str, Any]) -> list[tuple[str, str]]:
    """The table rows of ``measure_fhir``'s figures."""
    return [
        (f"FHIR search {label} ({t['requests']} requests) p50 / p95", f"{t['p50']} / {t['p95']} ms")
        for label, t in fhir.items()
    ]
