"""The accounting of disclosures and the report PDFs, measured by bench/reports.py.

For the patients bench/reports.py chose in each band (a random sample of
the fill's skew, about one event in six a ``disclosure`` or ``export``):

* ``POST /v1/reports/disclosures`` by the MRN, as of now: p50/p95 per band
  (its cost grows with the patient's events, never with the log);
* ``?format=pdf`` of the accounting and of the patient-access report for a
  few patients of the smaller bands: p50/p95, with the pages' byte size. A
  PDF signs a checkpoint and verifies an inclusion proof per listed event,
  so it costs more than the JSON; the frequent-flyer band (5,000+ events) is
  left out of the patient PDF (thousands of rows a person does not read;
  the service caps a PDF at 10,000 events).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from ._common import percentile

PDF_BANDS = ("1-10", "11-100", "101-500")
PDF_PATIENTS = 5


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(samples, 0.5) * 1000, 2), "p95": round(percentile(samples, 0.95) * 1000, 2)}


async def measure_documents(
    base_url: str,
    token: str,
    chosen: dict[str, list[int]],
    body_for: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """Accounting per band; accounting and patient PDFs on the smaller bands."""
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"accounting": {}, "accounting_pdf": {}, "patient_pdf": {}}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as client:

        async def timed(path: str, body: dict[str, Any]) -> tuple[float, httpx.Response]:
            t0 = time.perf_counter()
            response = await client.post(path, json=body)
            seconds = time.perf_counter() - t0
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            return seconds, response

        for band, patients in chosen.items():
            times, entries = [], []
            for patient in patients:
                seconds, response = await timed("/v1/reports/disclosures", body_for(patient))
                times.append(seconds)
                entries.append(sum(e["count"] for e in response.json()["entries"]))
            out["accounting"][band] = {
                "requests": len(times),
                "disclosures_listed_max": max(entries, default=0),
                **_ms(times),
            }
            if band not in PDF_BANDS:
                continue
            for kind, path in (
                ("accounting_pdf", "/v1/reports/disclosures"),
                ("patient_pdf", "/v1/reports/patient-access"),
            ):
                times, sizes = [], []
                for patient in patients[:PDF_PATIENTS]:
                    seconds, response = await timed(f"{path}?format=pdf", body_for(patient))
                    times.append(seconds)
                    sizes.append(len(response.content))
                out[kind][band] = {"requests": len(times), "bytes_max": max(sizes), **_ms(times)}
    return out
