"""The demo's day of traffic: deterministic, valid, varied, and in need of
identifier linkage to report on. No database needed."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import auditsvc_sdk
import pytest
from auditsvc_sdk import PhiAccess

from auditsvc import demo

DAY = date(2026, 11, 24)
MRN_A = "urn:oid:2.16.840.1.113883.3.1234.1.1"
MRN_B = "urn:oid:2.16.840.1.113883.3.5678.2.1"
EMPI = "urn:oid:2.16.840.1.113883.3.9999.0"
FHIR_ID = "https://fhir.example-hospital.org/Patient"


@pytest.fixture(scope="module")
def day() -> list[dict[str, Any]]:
    return demo.generate_day(seed=7, day=DAY)


def _ids(event: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["system"], i["value"]) for i in event["patient"]["identifiers"]}


def _systems(event: dict[str, Any]) -> set[str]:
    return {event["source"]["system_id"], event["destination"]["system_id"]}


def _linked(events: list[dict[str, Any]], start: tuple[str, str]) -> set[tuple[str, str]]:
    """Every identifier reachable from ``start`` through events that carry
    several identifiers together: what the service should link."""
    linked, frontier = {start}, [start]
    by_id: dict[tuple[str, str], list[set[tuple[str, str]]]] = {}
    for event in events:
        for ident in _ids(event):
            by_id.setdefault(ident, []).append(_ids(event))
    while frontier:
        for group in by_id.get(frontier.pop(), []):
            for other in group - linked:
                linked.add(other)
                frontier.append(other)
    return linked


def test_same_seed_and_day_give_identical_events(day):
    assert demo.generate_day(seed=7, day=DAY) == day
    assert demo.generate_day(seed=8, day=DAY) != day


def test_default_day_is_a_complete_past_day():
    events = demo.generate_day(scale=0.05)
    last = datetime.fromisoformat(events[-1]["occurred_at"].replace("Z", "+00:00"))
    assert last < datetime.now(last.tzinfo)


@pytest.mark.parametrize("seed", [7, 1, 2024])
def test_every_event_validates_as_a_phi_access(seed):
    for event in demo.generate_day(seed=seed, day=DAY):
        assert PhiAccess.model_validate(event).to_json()["event_id"] == event["event_id"]


def test_event_ids_are_unique_version_4_uuids(day):
    ids = [uuid.UUID(e["event_id"]) for e in day]
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {4}


def test_events_are_sorted_and_fall_within_the_local_day(day):
    instants = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in day]
    assert instants == sorted(instants)
    start = datetime.fromisoformat(f"{DAY.isoformat()}T00:00:00-05:00")
    assert start <= instants[0] and instants[-1] < start + timedelta(days=1)
    offsets = {e["occurred_at"][-6:] for e in day if not e["occurred_at"].endswith("Z")}
    assert {"-05:00", "-06:00"} <= offsets
    assert any(e["occurred_at"].endswith("Z") for e in day)


def test_working_hours_carry_more_traffic_than_the_night(day):
    hours = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).astimezone(demo.TZ_A).hour for e in day]
    assert sum(9 <= h < 17 for h in hours) > 3 * sum(0 <= h < 6 for h in hours)


@pytest.mark.parametrize(("scale", "low", "high"), [(1.0, 1400, 1600), (0.2, 250, 350), (2.0, 2900, 3100)])
def test_scale_sets_the_volume(scale, low, high):
    assert low <= len(demo.generate_day(seed=3, day=DAY, scale=scale)) <= high


@pytest.mark.parametrize("seed", [7, 1, 2024])
def test_all_traffic_kinds_appear(seed):
    events = demo.generate_day(seed=seed, day=DAY)
    assert {"hl7v2-message", "fhir-rest", "query", "break-glass", "export"} <= {e["event_type"] for e in events}
    message_types = {e["attributes"]["message_type"] for e in events if e["event_type"] == "hl7v2-message"}
    assert {"ADT^A01", "ADT^A04", "ADT^A08", "ADT^A03", "ORM^O01", "ORU^R01", "DFT^P03", "VXU^V04"} <= message_types
    assert {"TREAT", "ETREAT", "HPAYMT", "PUBHLTH"} <= {e.get("purpose_of_use") for e in events}
    assert {0, 4, 8} <= {e["outcome"] for e in events}
    assert all(e["purpose_of_use"] == "PUBHLTH" for e in events if e["attributes"].get("message_type") == "VXU^V04")
    assert all(e["purpose_of_use"] == "HPAYMT" for e in events if e["event_type"] == "export")
    for event in events:
        if event["event_type"] == "break-glass":
            assert event["purpose_of_use"] == "ETREAT"
            assert event["actor"]["type"] == "user" and event["actor"]["role"] == "physician"
        if event["event_type"] == "fhir-rest":
            assert event["action"] == "R" and event["actor"]["type"] == "user"
        if event["event_type"] == "hl7v2-message":
            assert event["actor"]["type"] == "system" and event["actor"]["id"].startswith("mirth-engine/")
            assert event["message_id"] and event["attributes"]["hl7_version"]


def test_every_source_is_a_demo_source_system(day):
    assert {e["source"]["system_id"] for e in day} <= set(demo.DEMO_SOURCE_SYSTEMS)
    assert {sid for e in day for sid in _systems(e)} <= set(demo.DEMO_SYSTEMS)


def test_each_system_knows_only_its_own_identifiers(day):
    """The premise of the demo: no system sends every identifier."""
    known: dict[str, set[str]] = {}
    for event in day:
        for sid in _systems(event):
            known.setdefault(sid, set()).update(system for system, _ in _ids(event))
    assert known["fhir-patient-app"] == {FHIR_ID, EMPI}
    assert known["rad-ris"] == {MRN_B, EMPI}
    assert known["billing-hb"] == {MRN_A}
    assert MRN_B not in known["lab-lis"] and FHIR_ID not in known["lab-lis"]
    assert all(len(_ids(e)) < 3 for e in day)


@pytest.mark.parametrize("seed", [7, 1, 2024])
def test_featured_patient_report_needs_linkage(seed):
    events = demo.generate_day(seed=seed, day=DAY)
    featured = demo.featured_patient(events)
    assert featured[0] == MRN_A
    assert demo.featured_patient(events) == featured

    linked = _linked(events, featured)
    assert {MRN_A, EMPI, MRN_B, FHIR_ID} <= {system for system, _ in linked}
    reached = [e for e in events if _ids(e) & linked]
    direct = [e for e in reached if featured in _ids(e)]
    only_via_linkage = [e for e in reached if featured not in _ids(e)]
    assert only_via_linkage, "every event carries the featured identifier: linkage is not exercised"
    all_systems = {s for e in reached for s in _systems(e)}
    assert len(all_systems) >= 3
    # Systems a report by the MRN alone would miss.
    missed = {s for e in only_via_linkage for s in _systems(e)} - {s for e in direct for s in _systems(e)}
    assert {"fhir-patient-app", "rad-ris"} <= missed


def test_featured_patient_refuses_an_empty_day():
    with pytest.raises(ValueError):
        demo.featured_patient([])


class _FakeClient:
    """Stands in for the SDK client: the second sight of an event_id is a duplicate."""

    seen: set[str] = set()
    batches: list[int] = []

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def record_batch(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        type(self).batches.append(len(events))
        results = []
        for event in events:
            status = "duplicate" if event["event_id"] in self.seen else "accepted"
            self.seen.add(event["event_id"])
            results.append({"event_id": event["event_id"], "status": status, "seq": 0})
        return {"results": results}

    def __enter__(self) -> _FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_send_day_batches_and_counts_duplicates_on_rerun(monkeypatch):
    monkeypatch.setattr(auditsvc_sdk, "AuditClient", _FakeClient)
    monkeypatch.setattr(_FakeClient, "seen", set())
    monkeypatch.setattr(_FakeClient, "batches", [])
    events = demo.generate_day(seed=7, day=DAY, scale=0.4)

    assert demo.send_day("http://audit.test", "tok", events, batch_size=250) == {
        "accepted": len(events),
        "duplicate": 0,
    }
    assert max(_FakeClient.batches) == 250 and sum(_FakeClient.batches) == len(events)
    assert demo.send_day("http://audit.test", "tok", events) == {"accepted": 0, "duplicate": len(events)}
    with pytest.raises(ValueError):
        demo.send_day("http://audit.test", "tok", events, batch_size=1001)
