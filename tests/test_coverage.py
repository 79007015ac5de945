"""The coverage report: every system and emitter with its last event and
usual rate, silent ones flagged, pairs seen for the first time; the pairs
projection written at ingest and checked by verify."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import Service, as_superuser, event, query, run_cli

NOW = datetime.now(UTC)


def at(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


@pytest.fixture
def world(service: Service) -> tuple[Service, httpx.Client]:
    adt = service.token(Role.EMITTER, ["epic-adt"])
    old = service.token(Role.EMITTER, ["old-ris"])
    service.token(Role.EMITTER, ["never-used"])  # a credential that never sent anything
    with service.client(adt) as client:
        # epic-adt -> lab-lis every 6 minutes for the last hour: 10 an hour.
        events = [
            event(source="epic-adt", destination="lab-lis", occurred_at=at(timedelta(minutes=6 * i))) for i in range(11)
        ]
        # A pair first seen three weeks ago, and again today.
        events.append(event(source="epic-adt", destination="billing", occurred_at=at(timedelta(days=21))))
        events.append(event(source="epic-adt", destination="billing", occurred_at=at(timedelta(hours=2))))
        client.post("/v1/events", json={"events": events}).raise_for_status()
    with service.client(old) as client:
        # Radiology last sent three days ago.
        batch = [
            event(source="old-ris", destination="pacs", occurred_at=at(timedelta(days=3, minutes=i))) for i in (0, 30)
        ]
        client.post("/v1/events", json={"events": batch}).raise_for_status()
    with service.client(service.token(Role.ADMIN)) as admin:
        entry = {"name": "State Registry", "relationship": "external_recipient", "baa": {"status": "not_required"}}
        admin.put("/v1/systems/state-registry", json=entry).raise_for_status()
        entry = {"name": "Lab LIS", "relationship": "workforce", "baa": {"status": "not_required"}}
        admin.put("/v1/systems/lab-lis", json=entry).raise_for_status()
    return service, service.client(service.token(Role.PRIVACY_OFFICER))


def coverage(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get("/v1/reports/coverage", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_every_system_with_its_last_event_rate_and_silence(world: tuple[Service, httpx.Client]) -> None:
    _, officer = world
    report = coverage(officer)
    systems = {s["system_id"]: s for s in report["systems"]}
    assert set(systems) == {"epic-adt", "lab-lis", "billing", "old-ris", "pacs", "state-registry"}
    lab = systems["lab-lis"]
    assert (lab["silent"], lab["registered"], lab["name"], lab["relationship"]) == (False, True, "Lab LIS", "workforce")
    assert lab["rate_per_hour"] == pytest.approx(10, rel=0.01)
    assert datetime.fromisoformat(lab["last_event"]) == datetime.fromisoformat(at(timedelta(0)))
    assert systems["old-ris"]["silent"] and systems["pacs"]["silent"] and not systems["old-ris"]["registered"]
    assert systems["old-ris"]["rate_per_hour"] == pytest.approx(2)
    never = systems["state-registry"]
    assert never["never_seen"] and never["silent"] and never["last_event"] is None
    assert [s["system_id"] for s in report["systems"][:3]] == ["old-ris", "pacs", "state-registry"]  # silent first
    assert report["silent_after_seconds"] == 24 * 3600


def test_the_window_is_a_parameter(world: tuple[Service, httpx.Client]) -> None:
    _, officer = world
    systems = {s["system_id"]: s for s in coverage(officer, silent_after="4d")["systems"]}
    assert not systems["old-ris"]["silent"]
    systems = {s["system_id"]: s for s in coverage(officer, silent_after="30m")["systems"]}
    assert systems["billing"]["silent"] and not systems["lab-lis"]["silent"]


def test_emitters_with_their_last_event_and_those_never_heard_from(world: tuple[Service, httpx.Client]) -> None:
    _, officer = world
    emitters = coverage(officer)["emitters"]
    by_systems = {tuple(e["systems"]): e for e in emitters}
    assert set(by_systems) == {("epic-adt",), ("old-ris",), ("never-used",)}  # no officer, admin or cli reads
    assert not by_systems[("epic-adt",)]["silent"]
    assert by_systems[("old-ris",)]["silent"] and by_systems[("old-ris",)]["last_seq"] is not None
    assert by_systems[("never-used",)]["never_seen"] and by_systems[("never-used",)]["silent"]


def test_pairs_seen_for_the_first_time_in_a_period(world: tuple[Service, httpx.Client]) -> None:
    service, officer = world
    pairs = coverage(officer)["new_pairs"]["pairs"]  # the last seven days
    assert [(p["source_system"], p["destination_system"]) for p in pairs] == [
        ("epic-adt", "lab-lis"),
        ("old-ris", "pacs"),
    ]
    assert pairs[0]["destination_name"] == "Lab LIS" and pairs[0]["source_name"] is None
    month = coverage(officer, **{"from": (NOW - timedelta(days=30)).date().isoformat()})["new_pairs"]["pairs"]
    assert {(p["source_system"], p["destination_system"]) for p in month} == {
        ("epic-adt", "lab-lis"),
        ("epic-adt", "billing"),
        ("old-ris", "pacs"),
    }
    billing = next(p for p in month if p["destination_system"] == "billing")
    assert datetime.fromisoformat(billing["first_event"]) == datetime.fromisoformat(at(timedelta(days=21)))
    # One row per pair, the first event's: repeats and the service's own events add none.
    rows = query(
        str(service.settings.database_url),
        "SELECT source_system, destination_system, first_seq FROM system_pairs ORDER BY first_seq",
    )
    assert [(r["source_system"], r["destination_system"], r["first_seq"]) for r in rows][:3] == [
        ("epic-adt", "lab-lis", 0),
        ("epic-adt", "billing", 11),
        ("old-ris", "pacs", 13),
    ]
    assert len(rows) == len({(r["source_system"], r["destination_system"]) for r in rows})


def test_the_report_is_recorded_in_the_chain(world: tuple[Service, httpx.Client]) -> None:
    service, officer = world
    coverage(officer)
    rows = query(
        str(service.settings.database_url),
        "SELECT record FROM events WHERE record LIKE '%coverage-report%' ORDER BY seq",
    )
    [record] = [json.loads(r["record"]) for r in rows]
    assert record["source"]["system_id"] == "auditsvc" and record["event_type"] == "audit-log-query"
    assert record["actor"]["role"] == "privacy_officer"


def test_csv(world: tuple[Service, httpx.Client]) -> None:
    _, officer = world
    response = officer.get("/v1/reports/coverage", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    kinds = {(r["kind"], r["id"]) for r in rows}
    assert ("system", "old-ris") in kinds and ("new_pair", "epic-adt") in kinds
    assert next(r for r in rows if r["id"] == "old-ris")["silent"] == "True"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"silent_after": "soon"}, "silent_after"),
        ({"silent_after": "0h"}, "silent_after"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"format": "pdf"}, "format"),
    ],
)
def test_bad_parameters_are_refused_naming_them(service: Service, params: dict[str, str], field: str) -> None:
    with service.client(service.token(Role.AUDITOR)) as auditor:
        response = auditor.get("/v1/reports/coverage", params=params)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_roles(service: Service) -> None:
    for role, status in ((Role.AUDITOR, 200), (Role.ADMIN, 403)):
        with service.client(service.token(role)) as client:
            assert client.get("/v1/reports/coverage").status_code == status
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as emitter:
        assert emitter.get("/v1/reports/coverage").status_code == 403
    with service.client() as anonymous:
        assert anonymous.get("/v1/reports/coverage").status_code == 401


def test_verify_catches_a_pair_removed_or_moved(world: tuple[Service, httpx.Client]) -> None:
    service, _ = world
    settings: Settings = service.settings
    url = str(settings.database_url)
    assert run_cli(settings, "verify").returncode == 0
    as_superuser(url, "DELETE FROM system_pairs WHERE destination_system = 'billing'")
    result = run_cli(settings, "verify", "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["kind"] == "system_pairs_mismatch"
    as_superuser(
        url,
        "INSERT INTO system_pairs SELECT log_id, 'epic-adt', 'billing', first_seq + 1, first_occurred_at "
        "FROM system_pairs WHERE destination_system = 'lab-lis'",
    )
    assert json.loads(run_cli(settings, "verify", "--json").stdout)["kind"] == "system_pairs_mismatch"


def test_cli_report_coverage(world: tuple[Service, httpx.Client]) -> None:
    service, _ = world
    result = run_cli(service.settings, "report", "coverage", "--format", "json", "--silent-after", "4d")
    assert result.returncode == 0, result.stderr
    systems = {s["system_id"]: s for s in json.loads(result.stdout)["systems"]}
    assert not systems["old-ris"]["silent"] and systems["state-registry"]["never_seen"]
    table = run_cli(service.settings, "report", "coverage")
    assert table.returncode == 0 and "SILENT" in table.stdout and "State Registry" in table.stdout
    bad = run_cli(service.settings, "report", "coverage", "--from", "2026-11-02", "--to", "2026-11-01")
    assert bad.returncode == 2 and "'from' is after 'to'" in bad.stderr
