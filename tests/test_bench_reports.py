"""bench.reports: the skewed population it fills, and a --quick run end to end
(fill, bytes per event, the real service, every measured band)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench._common import synthetic_patient
from bench.reports import BANDS, SkewedEvents, plan_population

from .conftest import REPO


def test_a_million_events_are_mostly_small_patients_and_a_few_frequent_flyers() -> None:
    population = plan_population(1_000_000, seed=1)
    assert sum(population.counts) == 1_000_000
    for band in BANDS:
        patients = population.bands[band.name]
        assert all(band.low <= population.counts[p] <= band.high for p in patients), band.name
    assert len(population.bands["5000+"]) == 20
    assert len(population.bands["101-500"]) == 300
    assert len(population.bands["1-10"]) > 70_000
    small = sum(population.counts[p] for p in population.bands["1-10"])
    assert small > 1_000_000 // 3


def test_a_small_log_keeps_a_few_patients_in_every_band() -> None:
    population = plan_population(30_000, seed=1)
    assert sum(population.counts) == 30_000
    for band in BANDS:
        assert len(population.bands[band.name]) >= 1, band.name


def test_every_patient_gets_exactly_its_events_each_with_its_mrn() -> None:
    population = plan_population(12_000, seed=3)
    source = SkewedEvents(population, seed=3)
    seen: Counter[str] = Counter()
    for _ in range(0, 12_000, 500):
        for event in source.events(500):
            identifiers = event["patient"]["identifiers"]
            assert 2 <= len(identifiers) <= 3
            seen[identifiers[0]["value"]] += 1
    assert source.events(10) == []
    assert seen == {synthetic_patient(p)[0]["value"]: n for p, n in enumerate(population.counts)}


@pytest.mark.slow
def test_quick_run_measures_every_band_over_http() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.reports", "--quick", "--patients", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = done.stdout.strip().splitlines()[-1]
    assert written.startswith("results: "), done.stdout[-3000:]
    results = json.loads(Path(written.removeprefix("results: ")).read_text())
    assert results["events"] == 30_000
    assert set(results["bands"]) == {"5000+", "101-500", "11-100", "1-10"}
    for name, band in results["bands"].items():
        assert band["patients"] == 2, name
        assert band["page_mismatches"] == 0, name
        assert band["report_ms"]["p95"] > 0 and band["bare_read_ms"]["p95"] > 0, name
        low = next(b.low for b in BANDS if b.name == name)
        assert band["filled_min_median_max"][0] >= low, name
        assert band["rows_read_min_median_max"][0] >= band["filled_min_median_max"][0], name
    assert results["storage"]["tables"]["events"]["per_event"] > 500
    assert results["storage"]["per_event"] > results["storage"]["tables"]["events"]["per_event"]
    assert results["empty_report_ms"]["p50"] > 0
    sampled = results["storage"]["records_sampled"]
    assert sampled["rows"] > 0 and sampled["avg_text_bytes"] > 500
    assert "skipped" in results["by_system"] or results["by_system"]["one hour"]["requests"] > 0
    assert "skipped" in results["by_system"] or results["by_system"]["coverage"]["p95"] > 0
    assert "skipped" in results["by_system"] or results["by_system"]["break-glass queue, unreviewed"]["p95"] > 0
    documents = results["documents"]
    assert set(documents["accounting"]) == set(results["bands"])
    assert all(d["p95"] > 0 for d in documents["accounting"].values())
    assert documents["accounting_pdf"]["1-10"]["bytes_max"] > 1000
    assert documents["patient_pdf"]["101-500"]["p95"] > 0
