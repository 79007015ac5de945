"""Break-glass review: the queue, verdicts as events in the chain, supersession,
the overdue list, CSV, paging, bad input and forged reviews; real service,
real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from auditsvc import demo
from auditsvc.domain.reviews import MAX_PAGE, QueueQuery, ReviewConfig, break_glass_queue, seq_attributes
from auditsvc.domain.tokens import Caller, Role
from auditsvc.runtime import open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import Service, event, query

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
P1 = (MRN, "MRN-BG-0001")
P2 = (MRN, "MRN-BG-0002")
P3 = (MRN, "MRN-BG-0003")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-BG-0001")


def days_ago(n: float) -> str:
    return (datetime.now(UTC) - timedelta(days=n)).isoformat()


@dataclass
class Queue:
    service: Service
    officer: httpx.Client
    emitter: httpx.Client
    ids: dict[str, str]  # name -> event_id

    def events_count(self) -> int:
        return int(query(str(self.service.settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])

    def record(self, seq: int) -> dict[str, Any]:
        [row] = query(str(self.service.settings.database_url), "SELECT record FROM events WHERE seq = $1", seq)
        return dict(json.loads(row["record"]))

    def page(self, **params: Any) -> dict[str, Any]:
        response = self.officer.get("/v1/reviews/break-glass", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def review(self, name: str, verdict: str, notes: str = "") -> dict[str, Any]:
        response = self.officer.post(
            "/v1/reviews", json={"event_id": self.ids[name], "verdict": verdict, "notes": notes}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def q(service: Service) -> Queue:
    emitter = service.client(service.token(Role.EMITTER, ["epic-ehr", "cerner-b"]))
    physician = {"id": "u-dr-0311", "type": "user", "role": "physician"}
    events = {
        # Break-glass by event type, ten days ago.
        "typed": event([P1, EMPI], source="epic-ehr", destination="epic-ehr", occurred_at=days_ago(10),
                       event_type="break-glass", purpose_of_use="ETREAT", actor=physician),
        # By purpose of use only, yesterday.
        "purpose": event([P2], source="cerner-b", destination="cerner-b", occurred_at=days_ago(1),
                         purpose_of_use="ETREAT", actor=physician),
        # By attribute only, twenty days ago.
        "attribute": event([P3], source="epic-ehr", destination="epic-ehr", occurred_at=days_ago(20),
                           attributes={"break_glass": True}),
        # An ordinary access: never in the queue.
        "ordinary": event([P1], source="epic-ehr", destination="lab-lis", occurred_at=days_ago(5)),
    }  # fmt: skip
    emitter.post("/v1/events", json={"events": list(events.values())}).raise_for_status()
    officer = service.client(service.token(Role.PRIVACY_OFFICER))
    return Queue(service, officer, emitter, {name: e["event_id"] for name, e in events.items()})


def names(q: Queue, page: dict[str, Any]) -> list[str]:
    by_id = {v: k for k, v in q.ids.items()}
    return [by_id[item["event"]["event_id"]] for item in page["items"]]


def test_the_queue_lists_break_glass_accesses_oldest_first_and_only_them(q: Queue) -> None:
    page = q.page()
    assert page["status"] == "unreviewed"
    assert names(q, page) == ["attribute", "typed", "purpose"]
    first = page["items"][1]
    assert first["status"] == "unreviewed" and first["verdict"] is None and first["history"] == []
    # The patient is revealed to the officer, in clear.
    assert {(i["system"], i["value"]) for i in first["event"]["patient"]["identifiers"]} == {P1, EMPI}
    assert [i["overdue"] for i in page["items"]] == [True, True, False]  # the review window defaults to 7 days
    assert q.page(status="reviewed")["items"] == []
    assert names(q, q.page(status="all")) == ["attribute", "typed", "purpose"]


def test_each_page_is_recorded_in_the_chain_with_the_seqs_it_revealed(q: Queue) -> None:
    before = q.events_count()
    page = q.page(limit=2)
    assert q.events_count() == before + 1
    record = q.record(before)
    assert record["event_type"] == "audit-log-query" and record["source"]["system_id"] == "auditsvc"
    assert record["attributes"]["query"] == "break-glass-queue"
    revealed = [int(s) for s in record["attributes"]["seqs.0"].split(",")]
    assert revealed == [item["event"]["seq"] for item in page["items"]]
    assert record["patient"]["identifiers"][0]["system"] == "urn:auditsvc:break-glass-queue"
    # Every listing of a status is under one subject key: the patient index finds them all.
    q.page(limit=2)
    again = q.record(before + 1)
    assert again["patient"]["identifiers"][0]["value_hmac"] == record["patient"]["identifiers"][0]["value_hmac"]


def test_a_full_page_s_seqs_fit_the_attributes() -> None:
    seqs = list(range(10**12, 10**12 + MAX_PAGE))  # 13-digit seqs, 500 of them
    attributes = seq_attributes(seqs)
    assert all(len(v) <= 1000 for v in attributes.values()) and len(attributes) <= 32 - 6
    assert [int(s) for k in sorted(attributes, key=lambda k: int(k[5:])) for s in attributes[k].split(",")] == seqs
    assert seq_attributes([]) == {}


def test_a_review_is_an_event_in_the_chain_linked_to_the_reviewed_event(q: Queue) -> None:
    before = q.events_count()
    answer = q.review("typed", "appropriate", "ED attending, patient unresponsive")
    review = answer["review"]
    assert review["verdict"] == "appropriate" and review["supersedes"] is None
    assert review["seq"] == before and q.events_count() == before + 1
    reviewed = q.record(answer["event"]["seq"])
    record = q.record(review["seq"])
    assert record["event_id"] == review["review_event_id"]
    assert record["event_type"] == "break-glass-review"
    assert record["source"]["system_id"] == "auditsvc"
    assert record["data_elements"] == [f"AuditEvent/{q.ids['typed']}"]
    assert record["attributes"]["reviewed_event_id"] == q.ids["typed"]
    assert record["attributes"]["reviewed_seq"] == reviewed["seq"]
    assert record["attributes"]["notes"] == "ED attending, patient unresponsive"
    assert record["actor"]["role"] == "privacy_officer"
    # The reviewed patient is its subject: the same identifier keys.
    keys = {i["value_hmac"] for i in record["patient"]["identifiers"]}
    assert keys == {i["value_hmac"] for i in reviewed["patient"]["identifiers"]}
    # ... so it shows in that patient's history.
    report = q.officer.post("/v1/reports/patient-access", json={"identifier": {"system": P1[0], "value": P1[1]}})
    assert review["review_event_id"] in {e["event_id"] for e in report.json()["events"]}
    # Reviewed now: out of the unreviewed queue, into the reviewed one.
    assert names(q, q.page()) == ["attribute", "purpose"]
    [item] = q.page(status="reviewed")["items"]
    assert item["verdict"] == "appropriate" and item["review"]["notes"] == "ED attending, patient unresponsive"


def test_a_later_review_supersedes_the_earlier_and_the_history_is_kept(q: Queue) -> None:
    first = q.review("attribute", "investigate", "asked the ED for the override form")["review"]
    final = q.review("attribute", "inappropriate", "no emergency on record")["review"]
    assert final["supersedes"] == first["review_event_id"]
    [item] = q.page(status="reviewed")["items"]
    assert item["verdict"] == "inappropriate"
    assert [h["verdict"] for h in item["history"]] == ["investigate", "inappropriate"]
    assert item["review"] == item["history"][-1] == final


def test_overdue_lists_accesses_still_unreviewed_after_the_window(q: Queue) -> None:
    assert names(q, q.page(status="overdue")) == ["attribute", "typed"]
    assert q.page(status="overdue")["older_than"] == 7
    assert names(q, q.page(status="overdue", older_than=15)) == ["attribute"]
    assert names(q, q.page(status="all", older_than=15)) == ["attribute"]
    q.review("typed", "appropriate")
    assert names(q, q.page(status="overdue")) == ["attribute"]
    assert names(q, q.page(status="overdue", older_than=0)) == ["attribute", "purpose"]


def test_the_review_window_is_a_setting(service: Service) -> None:
    assert service.settings.break_glass_review_days == 7
    assert Settings(break_glass_review_days=2).break_glass_review_days == 2


def test_pages_follow_the_cursor_on_one_snapshot(q: Queue) -> None:
    first = q.page(status="all", limit=2)
    assert names(q, first) == ["attribute", "typed"] and first["next_cursor"]
    q.review("purpose", "appropriate")  # after the first page: not in this report's snapshot
    second = q.page(status="all", limit=2, cursor=first["next_cursor"])
    assert names(q, second) == ["purpose"] and second["next_cursor"] is None
    assert second["items"][0]["status"] == "unreviewed"


def test_csv_streams_the_whole_queue_recording_each_page(q: Queue) -> None:
    q.review("typed", "investigate")
    before = q.events_count()
    response = q.officer.get("/v1/reviews/break-glass", params={"status": "all", "format": "csv", "limit": 2})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["event_id"] for r in rows] == [q.ids["attribute"], q.ids["typed"], q.ids["purpose"]]
    assert rows[1]["verdict"] == "investigate" and rows[1]["reviews"] == "1" and rows[0]["status"] == "unreviewed"
    assert f"{P1[0]}|{P1[1]}" in rows[1]["patient_identifiers"]
    # Two pages of two: two audit-log-query events, each naming the seqs it revealed.
    assert q.events_count() == before + 2
    pages = [q.record(before)["attributes"]["seqs.0"], q.record(before + 1)["attributes"]["seqs.0"]]
    assert ",".join(pages) == ",".join(r["seq"] for r in rows)
    assert error(q.officer.get("/v1/reviews/break-glass", params={"format": "pdf"}), 422)["errors"][0]["loc"][-1] == (
        "format"
    )


def test_an_emitter_cannot_forge_a_review(q: Queue) -> None:
    forged = event(
        [P1],
        source="epic-ehr",
        destination="auditsvc:break-glass-review",
        event_type="break-glass-review",
        data_elements=[f"AuditEvent/{q.ids['typed']}"],
        attributes={"reviewed_event_id": q.ids["typed"], "verdict": "appropriate"},
    )
    q.emitter.post("/v1/events", json={"events": [forged]}).raise_for_status()
    assert "typed" in names(q, q.page())
    assert q.page(status="reviewed")["items"] == []


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def test_bad_reviews_are_refused_naming_the_field_and_store_nothing(q: Queue) -> None:
    before = q.events_count()
    post = q.officer.post
    missing = error(
        post("/v1/reviews", json={"event_id": "0190a000-0000-7000-8000-000000000000", "verdict": "appropriate"}), 404
    )
    assert "event_id" in missing["detail"]
    ordinary = error(post("/v1/reviews", json={"event_id": q.ids["ordinary"], "verdict": "appropriate"}), 422)
    assert ordinary["errors"][0]["loc"] == ["event_id"] and "break-glass" in ordinary["detail"]
    verdict = error(post("/v1/reviews", json={"event_id": q.ids["typed"], "verdict": "fine"}), 422)
    assert verdict["errors"][0]["loc"] == ["verdict"]
    secret = "patient said MRN-BG-0001 " * 50
    notes = error(
        post("/v1/reviews", json={"event_id": q.ids["typed"], "verdict": "appropriate", "notes": secret}), 422
    )
    assert notes["errors"][0]["loc"] == ["notes"] and "MRN-BG" not in json.dumps(notes)
    error(post("/v1/reviews", json={"event_id": "not-a-uuid", "verdict": "appropriate"}), 422)
    error(post("/v1/reviews", json={"event_id": q.ids["typed"], "verdict": "appropriate", "extra": 1}), 422)
    error(post("/v1/reviews", content=b"{not json"), 400)
    assert q.events_count() == before


def test_bad_queue_requests_are_refused_naming_the_field(q: Queue) -> None:
    get = q.officer.get
    reversed_ = error(get("/v1/reviews/break-glass", params={"from": "2026-11-05", "to": "2026-11-01"}), 422)
    assert reversed_["errors"][0]["loc"] == ["from"]
    assert error(get("/v1/reviews/break-glass", params={"status": "pending"}), 422)["errors"][0]["loc"][-1] == "status"
    assert error(get("/v1/reviews/break-glass", params={"from": "yesterday"}), 422)["errors"][0]["loc"][0] == "from"
    assert error(get("/v1/reviews/break-glass", params={"older_than": -1}), 422)["errors"][0]["loc"][-1] == "older_than"
    # A cursor from another report, and one from another status of this one.
    report = q.officer.post(
        "/v1/reports/patient-access", json={"identifier": {"system": P1[0], "value": P1[1]}, "limit": 1}
    ).json()
    assert report["next_cursor"]
    other = error(get("/v1/reviews/break-glass", params={"cursor": report["next_cursor"]}), 422)
    assert other["errors"][0]["loc"] == ["cursor"] and "another" not in other["detail"]
    mine = q.page(status="all", limit=1)["next_cursor"]
    assert "another status" in error(get("/v1/reviews/break-glass", params={"cursor": mine}), 422)["detail"]
    assert error(get("/v1/reviews/break-glass", params={"cursor": "%%%"}), 422)["errors"][0]["loc"] == ["cursor"]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN, Role.EMITTER])
def test_only_a_privacy_officer_reviews(q: Queue, role: Role) -> None:
    with q.service.client(q.service.token(role, ["epic-ehr"] if role is Role.EMITTER else None)) as other:
        assert other.get("/v1/reviews/break-glass").status_code == 403
        body = {"event_id": q.ids["typed"], "verdict": "appropriate"}
        assert other.post("/v1/reviews", json=body).status_code == 403
    with q.service.client() as anonymous:
        assert anonymous.get("/v1/reviews/break-glass").status_code == 401
        assert anonymous.post("/v1/reviews", json=body).status_code == 401


def test_the_demo_s_break_glass_accesses_are_in_the_queue(service: Service) -> None:
    day = demo.generate_day(seed=11, scale=0.05)
    expected = {e["event_id"] for e in day if e["event_type"] == "break-glass" or e.get("purpose_of_use") == "ETREAT"}
    assert expected
    systems = sorted({e["source"]["system_id"] for e in day})
    with service.client(service.token(Role.EMITTER, systems)) as emitter:
        for start in range(0, len(day), 1000):
            emitter.post("/v1/events", json={"events": day[start : start + 1000]}).raise_for_status()
    with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
        page = officer.get("/v1/reviews/break-glass", params={"limit": 500}).json()
    assert {item["event"]["event_id"] for item in page["items"]} == expected


def test_a_filtered_listing_walks_a_bounded_stretch_per_request(q: Queue) -> None:
    # With a budget of one queue row a request, the reviewed access costs an
    # empty page with a cursor, and following the cursors lists every unreviewed one.
    q.review("attribute", "appropriate")
    officer = Caller(token_id="test-officer", role=Role.PRIVACY_OFFICER, systems=(), name=None)

    async def pages() -> list[list[str]]:
        out: list[list[str]] = []
        settings = q.service.settings
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            query = QueueQuery(limit=10)
            while True:
                page = await break_glass_queue(audit, query, officer, ReviewConfig(scan_budget=1))
                out.append([i["event"]["event_id"] for i in page["items"]])
                if not page["next_cursor"]:
                    return out
                query = query.model_copy(update={"cursor": page["next_cursor"]})

    listed = asyncio.run(pages())
    assert listed[0] == [] and [i for p in listed for i in p] == [q.ids["typed"], q.ids["purpose"]]
