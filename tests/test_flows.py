"""The PHI flow map and BAA coverage: pairs with their parties, BAAs judged on
each event's day (one that starts and expires within the period), flows into
unregistered systems and through middleware, expiring BAAs; the rollup that
serves them written at append and checked by verify."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditsvc.domain.alerts import AlertConfig, raise_alerts
from auditsvc.domain.baa import RegistryTimeline
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import (
    REPO,
    TEST_SECRET_KEY,
    Service,
    _admin,
    _with_database,
    as_superuser,
    event,
    make_token,
    query,
    run_cli,
    running_service,
)

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
EMPI = "urn:oid:2.16.840.1.113883.3.1234.9"
TODAY = datetime.now(UTC).date()
PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}


def on(day: str, hour: int, source: str, destination: str, patient: int, **kw: Any) -> dict[str, Any]:
    ids = [(MRN, f"MRN-FLOW-{patient:04d}")] + ([(EMPI, f"EMPI-{patient:04d}")] if kw.pop("empi", False) else [])
    return event(ids, source=source, destination=destination, occurred_at=f"{day}T{hour:02d}:15:00+00:00", **kw)


def entry(name: str, organization: str, relationship: str, baa: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "organization": organization, "relationship": relationship, "baa": baa}


REGISTRY = {
    "epic-adt": entry("Epic ADT", "General Hospital", "workforce", {"status": "not_required"}),
    "lab-lis": entry("Lab LIS", "General Hospital", "workforce", {"status": "not_required"}),
    # The interface engine's host: a BAA that starts and expires inside the period.
    "mirth-cloud": entry(
        "Mirth hosted engine",
        "Engine Hosting LLC",
        "business_associate",
        {"status": "on_file", "effective": "2026-11-10", "expires": "2026-11-20", "reference": "BAA-17"},
    ),
    "clearinghouse": entry("Claims clearinghouse", "ClearCo", "subcontractor", {"status": "none"}),
    "cloud-app": entry(
        "Patient app",
        "AppCo",
        "business_associate",
        {"status": "on_file", "effective": "2026-01-01", "expires": (TODAY + timedelta(days=10)).isoformat()},
    ),
}

EVENTS = [
    # epic-adt -> mirth-cloud: before, during and after the BAA.
    on("2026-11-05", 9, "epic-adt", "mirth-cloud", 1, purpose_of_use="TREAT"),
    on("2026-11-05", 10, "epic-adt", "mirth-cloud", 2, purpose_of_use="TREAT"),
    on("2026-11-15", 9, "epic-adt", "mirth-cloud", 1, purpose_of_use="TREAT"),
    on("2026-11-15", 10, "epic-adt", "mirth-cloud", 3, purpose_of_use="HPAYMT"),
    on("2026-11-15", 11, "epic-adt", "mirth-cloud", 4, purpose_of_use="TREAT"),
    on("2026-11-25", 9, "epic-adt", "mirth-cloud", 5, purpose_of_use="TREAT", data_elements=["PID", "IN1"]),
    # mirth-cloud passes PHI on: to a subcontractor without a BAA, to an unregistered HIE.
    on("2026-11-15", 12, "mirth-cloud", "clearinghouse", 1, event_type="x12-837", purpose_of_use="HPAYMT"),
    on("2026-11-15", 13, "mirth-cloud", "clearinghouse", 3, event_type="x12-837", purpose_of_use="HPAYMT"),
    on("2026-11-16", 8, "mirth-cloud", "state-hie", 6),
    on("2026-11-24", 8, "mirth-cloud", "state-hie", 6),  # the engine's BAA has expired: a gap "through" it
    # Within the hospital: no BAA needed. One patient under two identifiers counts once.
    on("2026-11-15", 9, "epic-adt", "lab-lis", 1, empi=True),
    on("2026-11-15", 10, "epic-adt", "lab-lis", 1),
    on("2026-11-15", 11, "epic-adt", "lab-lis", 7),
    on("2026-11-20", 9, "epic-adt", "cloud-app", 8, event_type="fhir-rest", data_elements=["Patient"]),
    # Outside the period.
    on("2026-10-20", 9, "epic-adt", "mirth-cloud", 9),
]


@dataclass
class World:
    service: Service
    officer: httpx.Client
    url: str


@pytest.fixture(scope="module")
def world(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    settings = Settings(
        database_url=_with_database(server_url, name),
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path_factory.mktemp("flows") / "data",
        log_name="test.auditsvc.local/log",
    )
    try:
        with running_service(settings) as service:
            sources = sorted({e["source"]["system_id"] for e in EVENTS})
            with service.client(service.token(Role.EMITTER, sources)) as emitter:
                emitter.post("/v1/events", json={"events": EVENTS}).raise_for_status()
            with service.client(service.token(Role.ADMIN)) as admin:
                for system_id, body in REGISTRY.items():
                    admin.put(f"/v1/systems/{system_id}", json=body).raise_for_status()
            officer_token = make_token(settings, Role.PRIVACY_OFFICER, None, "Pat Privacy (synthetic officer)")
            with service.client(officer_token) as officer:
                yield World(service, officer, str(settings.database_url))
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def flows(world: World, body: dict[str, Any] | None = None, **params: str) -> Any:
    response = world.officer.post("/v1/reports/flows", json=body if body is not None else PERIOD, params=params)
    assert response.status_code == 200, response.text
    return response.json() if params.get("format") in (None, "json") else response


def gaps(world: World, **params: Any) -> Any:
    response = world.officer.get("/v1/reports/baa-gaps", params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    return response.json() if params.get("format") in (None, "json") else response


def test_every_pair_of_the_period_with_counts_times_and_kinds(world: World) -> None:
    report = flows(world)
    by_pair = {(f["source_system"], f["destination_system"]): f for f in report["flows"]}
    assert set(by_pair) == {
        ("epic-adt", "mirth-cloud"),
        ("mirth-cloud", "clearinghouse"),
        ("mirth-cloud", "state-hie"),
        ("epic-adt", "lab-lis"),
        ("epic-adt", "cloud-app"),
    }  # the service's own events (registry changes, report runs) are no flow
    engine = by_pair[("epic-adt", "mirth-cloud")]
    assert engine["events"] == 6  # the October event is outside the period
    assert (
        engine["first_seen"] == "2026-11-05T09:15:00.000000Z" and engine["last_seen"] == "2026-11-25T09:15:00.000000Z"
    )
    assert engine["purposes_of_use"] == {"TREAT": 5, "HPAYMT": 1}
    assert engine["event_types"] == {"hl7v2-message": 6} and engine["actions"] == {"R": 6}
    assert engine["data_elements"] == ["IN1", "OBX", "PID", "PV1"]
    assert report["period"] == {"from": "2026-11-01T00:00:00.000000Z", "to": "2026-11-30T23:59:59.999999Z"}
    assert report["summary"]["events"] == 14 and report["summary"]["flows"] == 5


def test_parties_from_the_registry_with_the_baa_judged_on_each_events_day(world: World) -> None:
    by_pair = {(f["source_system"], f["destination_system"]): f for f in flows(world)["flows"]}
    engine = by_pair[("epic-adt", "mirth-cloud")]
    destination = engine["destination"]
    assert (destination["organization"], destination["relationship"]) == ("Engine Hosting LLC", "business_associate")
    assert destination["baa"]["reference"] == "BAA-17" and destination["through"]
    # Before the BAA took effect, while it held, after it expired.
    assert destination["baa_events"] == {"covered": 3, "expired": 1, "not_yet_effective": 2}
    assert engine["source"]["baa_events"] == {"not_required": 6}
    assert engine["uncovered_events"] == 3
    assert by_pair[("mirth-cloud", "state-hie")]["destination"]["registered"] is False
    assert by_pair[("mirth-cloud", "state-hie")]["uncovered_events"] == 2
    assert by_pair[("epic-adt", "lab-lis")]["uncovered_events"] == 0


def _gap(report: dict[str, Any], kind: str, reason: str, source: str | None, destination: str | None) -> Any:
    found = [
        g
        for g in report["gaps"]
        if (g["kind"], g["reason"], g["source_system"], g["destination_system"]) == (kind, reason, source, destination)
    ]
    assert len(found) == 1, (kind, reason, source, destination, report["gaps"])
    return found[0]


def test_gaps_into_and_through_uncovered_parties_and_unregistered_systems(world: World) -> None:
    report = gaps(world)
    early = _gap(report, "uncovered", "not_yet_effective", "epic-adt", "mirth-cloud")
    assert (early["events"], early["patients"]) == (2, 2)
    assert (
        early["first_event"] == "2026-11-05T09:15:00.000000Z" and early["last_event"] == "2026-11-05T10:15:00.000000Z"
    )
    late = _gap(report, "uncovered", "expired", "epic-adt", "mirth-cloud")
    assert (late["events"], late["patients"], late["party"]["organization"]) == (1, 1, "Engine Hosting LLC")
    none = _gap(report, "uncovered", "none", "mirth-cloud", "clearinghouse")
    assert (none["events"], none["patients"], none["party_side"]) == (2, 2, "destination")
    unregistered = _gap(report, "unregistered", "unregistered", "mirth-cloud", "state-hie")
    assert (unregistered["events"], unregistered["patients"]) == (2, 1)
    # Through: the engine received PHI and sent it on after its BAA expired.
    through = _gap(report, "uncovered", "expired", "mirth-cloud", "state-hie")
    assert (through["party_side"], through["party"]["system_id"], through["events"]) == ("source", "mirth-cloud", 1)
    assert through["party"]["through"] and through["first_event"] == "2026-11-24T08:15:00.000000Z"
    assert not [g for g in report["gaps"] if g["destination_system"] == "lab-lis"]
    assert report["summary"]["uncovered"] == {"gaps": 4, "events": 6}


def test_baas_expiring_within_the_window(world: World) -> None:
    soon = _gap(gaps(world), "expiring", "expires_soon", "epic-adt", "cloud-app")
    assert (soon["events"], soon["patients"], soon["days_left"]) == (1, 1, 10)
    assert soon["expires"] == (TODAY + timedelta(days=10)).isoformat()
    assert not [g for g in gaps(world, expiring_within_days=5)["gaps"] if g["kind"] == "expiring"]


def test_csv_of_flows_and_gaps(world: World) -> None:
    rows = list(csv.DictReader(io.StringIO(flows(world, format="csv").text)))
    engine = next(r for r in rows if r["destination_system"] == "mirth-cloud")
    assert engine["events"] == "6" and engine["destination_baa_events"] == "covered:3 expired:1 not_yet_effective:2"
    gap_rows = list(csv.DictReader(io.StringIO(gaps(world, format="csv").text)))
    assert {r["kind"] for r in gap_rows} == {"uncovered", "unregistered", "expiring"}


def test_each_run_is_recorded_in_the_chain(world: World) -> None:
    def runs() -> int:
        rows = query(
            world.url,
            "SELECT count(*) AS n FROM events "
            "WHERE record::jsonb -> 'attributes' ->> 'query' IN ('flow-map', 'baa-gaps')",
        )
        return int(rows[0]["n"])

    before = runs()
    flows(world)
    gaps(world)
    assert runs() == before + 2


def test_bad_requests_name_the_field(world: World) -> None:
    response = world.officer.post("/v1/reports/flows", json={"from": "2026-11-30", "to": "2026-11-01"})
    assert response.status_code == 422 and "'from' is after 'to'" in response.text
    response = world.officer.post("/v1/reports/flows", json={"since": "2026-11-01"})
    assert response.status_code == 422 and "since" in response.text
    response = world.officer.get("/v1/reports/baa-gaps", params={"expiring_within_days": "-1"})
    assert response.status_code == 422 and "expiring_within_days" in response.text
    with world.service.client(world.service.token(Role.AUDITOR)) as auditor:
        assert auditor.post("/v1/reports/flows", json={}).status_code == 403


def test_the_rollup_matches_the_events_and_verify_catches_a_tampered_row(world: World) -> None:
    settings = world.service.settings
    [row] = query(
        world.url,
        "SELECT sum(events) AS n FROM flow_days "
        "WHERE source_system = 'epic-adt' AND destination_system = 'mirth-cloud'",
    )
    assert row["n"] == 7
    assert run_cli(settings, "verify").returncode == 0
    # A count lowered and an element removed: the first is named.
    as_superuser(
        world.url,
        "UPDATE flow_days SET events = events - 1 WHERE day = '2026-11-05'",
        "DELETE FROM flow_day_elements WHERE data_element = 'IN1'",
    )
    try:
        result = run_cli(settings, "verify", "--json")
        assert result.returncode == 1, result.stdout
        found = json.loads(result.stdout)
        assert found["kind"] == "flow_rollup_mismatch"
        assert "(flow_days) has a count or time for 2026-11-05 epic-adt -> mirth-cloud" in found["damage"]["detail"]
    finally:
        as_superuser(
            world.url,
            "UPDATE flow_days SET events = events + 1 WHERE day = '2026-11-05'",
            "INSERT INTO flow_day_elements VALUES (1, '2026-11-25', 'epic-adt', 'mirth-cloud', 'IN1')",
        )


def test_cli_report_flows(world: World, tmp_path: Path) -> None:
    settings = world.service.settings
    result = run_cli(settings, "report", "flows", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["flows"] == 5
    out = tmp_path / "flows.csv"
    assert (
        run_cli(settings, "report", "flows", "--from", "2026-11-01", "--format", "csv", "--out", str(out)).returncode
        == 0
    )
    assert out.read_text().startswith("source_system,destination_system,events")


# --- the registry as it stood ----------------------------------------------------------------


def _version(system_id: str, recorded: str, baa: dict[str, Any], relationship: str = "business_associate") -> Any:
    return {
        "system_id": system_id,
        "name": system_id,
        "organization": "Vendor",
        "address": None,
        "relationship": relationship,
        "baa": {"effective": None, "expires": None, "reference": None, **baa},
        "registered": True,
        "recorded": {"seq": 1, "at": f"{recorded}T12:00:00.000000Z", "by": "admin"},
    }


def test_each_day_is_judged_against_the_entry_in_force_that_day() -> None:
    timeline = RegistryTimeline.of(
        [
            _version("vendor", "2026-11-01", {"status": "on_file", "effective": "2026-10-01", "expires": "2026-11-30"}),
            _version("vendor", "2026-12-05", {"status": "none"}),  # the BAA was terminated
            _version("vendor-b", "2026-11-10", {"status": "not_required"}, relationship="workforce"),
        ]
    )
    assert timeline.state("vendor", date(2026, 9, 15)) == "not_yet_effective"  # the first version reaches back
    assert timeline.state("vendor", date(2026, 10, 15)) == "covered"
    assert timeline.state("vendor", date(2026, 12, 1)) == "expired"
    assert timeline.state("vendor", date(2026, 12, 5)) == "none"  # recorded that day: in force that day
    assert timeline.state("vendor-b", date(2026, 11, 1)) == "not_required"
    assert timeline.state("nobody", date(2026, 11, 1)) == "unregistered"


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join((page.extract_text() or "") for page in PdfReader(io.BytesIO(data)).pages)


def test_the_committee_report_names_the_gaps_and_the_changes_since_the_last(world: World) -> None:
    async def raise_now() -> None:
        settings = world.service.settings
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            await raise_alerts(audit, AlertConfig())

    asyncio.run(raise_now())  # new flows, an expiring BAA, silent systems: listed among the changes
    first = flows(world, PERIOD, format="pdf")
    if os.environ.get("AUDITSVC_WRITE_EXAMPLES"):  # docs/examples/compliance-committee.pdf is this document
        (REPO / "docs" / "examples" / "compliance-committee.pdf").write_bytes(first.content)
    assert first.headers["content-type"] == "application/pdf"
    text = " ".join(_pdf_text(first.content).split())
    assert "PHI flows and business associate coverage" in text
    assert "first committee report recorded in the log" in text
    assert "BAA not yet effective" in text and "Engine Hosting LLC" in text and "not in the registry" in text
    assert "New flows: 5" in text and "epic-adt -> mirth-cloud" in text
    assert "Alerts raised: " in text and "baa_expiring" in text
    # Recorded in the chain: the next report counts its changes from this one.
    second = " ".join(_pdf_text(flows(world, PERIOD, format="pdf").content).split())
    assert "Since the report recorded at" in second and "New flows: 0" in second
    assert "Registry changes (BAAs signed, renewed or ended): 0" in second and "Alerts raised: 0" in second
    gaps_pdf = gaps(world, format="pdf")
    assert "Business associate agreement gaps" in " ".join(_pdf_text(gaps_pdf.content).split())


def test_the_drawn_map_fits_one_page_or_gives_way_to_the_table() -> None:
    from auditsvc.reports_pdf.flows import MAX_DRAWING_HEIGHT, flow_graph

    def report(receivers: int) -> dict[str, Any]:
        systems = [{"system_id": f"r-{i:02d}", "registered": True, "name": None, "organization": f"Org {i}",
                    "relationship": "workforce"} for i in range(receivers)]  # fmt: skip
        systems.append(
            {"system_id": "src", "registered": True, "name": None, "organization": "H", "relationship": "workforce"}
        )
        flows = [{"source_system": "src", "destination_system": s["system_id"], "events": 1, "uncovered_events": 0,
                  "source": {"through": False}, "destination": {"baa_events": {}}} for s in systems[:-1]]  # fmt: skip
        return {"systems": systems, "flows": flows}

    drawn = flow_graph(report(20))  # 20 organisations of one system each, in one column: rows shrink to fit
    assert drawn is not None and drawn.height <= MAX_DRAWING_HEIGHT + 10
    assert flow_graph(report(35)) is None  # rows would be too small to read: the table alone
    assert flow_graph(report(60)) is None


def test_the_command_lines_tables_name_the_parties_and_the_gaps(world: World) -> None:
    from auditsvc.cli._common import console
    from auditsvc.cli.report_flows import render_flows, render_gaps

    width = console.width
    console.width = 400  # no cell wrapped
    try:
        with console.capture() as captured:
            render_flows(flows(world))
            render_gaps(gaps(world))
    finally:
        console.width = width
    text = captured.get()
    assert "Engine Hosting LLC (business_associate)" in text and "not_yet_effective 2" in text
    assert "BAA gaps" in text and "unregistered" in text and "expires_soon" in text
