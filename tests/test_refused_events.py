"""Which events a refusal of ``POST /v1/events`` names, as structured fields.

A 403 (a source system the emitter token is not bound to) and a 422 (an
invalid event) answer ``refused: [{"index", "reason"}]``, one entry per
refused event, every one of them (a 403 lists all, not the first); the
reason is a code (``source_not_allowed``, ``invalid``), never text to parse.
The SDK dead-letters exactly those events, by those fields: it reads no
prose. Real service, real PostgreSQL; the SDK's own unit cases use
``httpx.MockTransport``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from auditsvc_sdk import AuditClient, EventRejected, RetryPolicy

from auditsvc.api.schemas import ErrorOut
from auditsvc.domain.tokens import Role

from .conftest import Service, event, query

QUICK = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.05)


def stored_ids(service: Service) -> set[str]:
    return {str(r["event_id"]) for r in query(str(service.settings.database_url), "SELECT event_id FROM events")}


def post(service: Service, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    with service.client(token) as http:
        return http.post("/v1/events", json={"events": events})


# --- the service's answers -------------------------------------------------------------------------


def test_a_403_lists_every_event_from_a_source_the_token_may_not_claim(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    events = [event(), event(source="cerner-b"), event(), event(source="lab-x")]
    answer = post(service, token, events)
    assert answer.status_code == 403
    body = answer.json()
    assert body["refused"] == [
        {"index": 1, "reason": "source_not_allowed"},
        {"index": 3, "reason": "source_not_allowed"},
    ]
    assert "events[1].source.system_id" in body["detail"] and "2 events" in body["detail"]
    assert "cerner-b" not in answer.text and "lab-x" not in answer.text
    assert ErrorOut.model_validate(body).model_dump(exclude_none=True) == body  # the documented shape, nothing more
    assert stored_ids(service) == set()


def test_a_422_lists_each_invalid_event_once_beside_its_fields(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    events = [event(action="X"), event(), event(action="Y", outcome=5), event()]
    answer = post(service, token, events)
    assert answer.status_code == 422
    body = answer.json()
    assert body["refused"] == [{"index": 0, "reason": "invalid"}, {"index": 2, "reason": "invalid"}]
    assert sorted({tuple(e["loc"][:2]) for e in body["errors"]}) == [("events", 0), ("events", 2)]
    assert ErrorOut.model_validate(body).model_dump(exclude_none=True) == body
    assert stored_ids(service) == set()


def test_a_structure_limit_inside_one_event_names_that_event(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    events = [event(), event(attributes={"nested": deep})]
    answer = post(service, token, events)
    assert answer.status_code == 422
    assert answer.json()["refused"] == [{"index": 1, "reason": "invalid"}]


def test_a_refusal_of_the_batch_itself_names_no_event(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as http:
        empty = http.post("/v1/events", json={"events": []})
        wrong_role = http.get("/v1/checkpoints/latest")
    assert empty.status_code == 422 and "refused" not in empty.json()
    assert wrong_role.status_code == 403 and "refused" not in wrong_role.json()


def test_openapi_documents_refused_event_out(service: Service) -> None:
    with service.client() as http:
        document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    refused = schemas["RefusedEventOut"]
    assert set(refused["required"]) == {"index", "reason"}
    assert refused["properties"]["reason"]["enum"] == ["invalid", "source_not_allowed"]
    items = json.dumps(schemas["ErrorOut"]["properties"]["refused"])
    assert "#/components/schemas/RefusedEventOut" in items
    assert "$defs" not in json.dumps(document)
    answers = document["paths"]["/v1/events"]["post"]["responses"]
    for status in ("403", "422"):
        assert answers[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}


# --- the SDK uses the fields ----------------------------------------------------------------------


def test_the_sdk_dead_letters_exactly_the_refused_events_with_their_reason_code(
    service: Service, tmp_path: Path
) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    events = [event(), event(source="cerner-b"), event(), event(source="lab-x")]
    dead = tmp_path / "dead.jsonl"
    client = AuditClient(service.url, token, dead_letter_path=dead, retry=QUICK)
    try:
        for e in events:
            client.record(e)
        assert client.flush(timeout=30)
    finally:
        client.close(timeout=5)
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    refused = {line["event"]["event_id"]: (line["status"], line["reason"]) for line in lines}
    assert refused == {
        events[1]["event_id"]: (403, "source_not_allowed"),
        events[3]["event_id"]: (403, "source_not_allowed"),
    }
    assert stored_ids(service) == {events[0]["event_id"], events[2]["event_id"]}
    assert client.counters().dead_lettered == 2 and client.counters().internal_errors == 0


def test_record_batch_raises_with_the_refused_events(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with AuditClient(service.url, token) as client, pytest.raises(EventRejected) as caught:
        client.record_batch([event(), event(source="cerner-b")])
    assert caught.value.status_code == 403
    assert caught.value.refused == [{"index": 1, "reason": "source_not_allowed"}]


def _answering(status: int, body: dict[str, Any], then_ok: bool = True) -> tuple[list[int], httpx.MockTransport]:
    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        sizes.append(len(events))
        if len(sizes) == 1 or not then_ok:
            return httpx.Response(status, json=body)
        return httpx.Response(200, json={"results": [{"status": "accepted", "seq": i} for i in range(len(events))]})

    return sizes, httpx.MockTransport(answer)


def test_the_sdk_reads_no_prose_a_403_without_refused_is_a_refused_client(tmp_path: Path) -> None:
    """The detail text names an event, but only ``refused`` counts: without it
    a 403 is the token's or role's fault, and the events are kept."""
    sizes, transport = _answering(403, {"detail": "events[0].source.system_id is not allowed"})
    client = AuditClient("http://audit.test", "tok", transport=transport, dead_letter_path=tmp_path / "d", retry=QUICK)
    try:
        client.record(event())
        client.record(event())
        assert client.flush(timeout=10)
    finally:
        client.close(timeout=1)
    assert sizes[:2] == [2, 2]
    assert client.counters().dead_lettered == 0 and client.counters().sent == 2


def test_the_sdk_dead_letters_by_refused_and_resends_the_rest(tmp_path: Path) -> None:
    body = {"detail": "refused", "refused": [{"index": 0, "reason": "source_not_allowed"}, {"index": 2, "reason": "x"}]}
    sizes, transport = _answering(403, body)
    dead = tmp_path / "dead.jsonl"
    client = AuditClient("http://audit.test", "tok", transport=transport, dead_letter_path=dead, retry=QUICK)
    events = [event() for _ in range(4)]
    try:
        for e in events:
            client.record(e)
        assert client.flush(timeout=10)
    finally:
        client.close(timeout=1)
    assert sizes == [4, 2]
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(line["event"]["event_id"], line["reason"]) for line in lines] == [
        (events[0]["event_id"], "source_not_allowed"),
        (events[2]["event_id"], "x"),
    ]


def test_an_invalid_event_is_dead_lettered_with_its_code_and_its_fields(tmp_path: Path) -> None:
    """(The SDK validates before sending; a service with a stricter rule refuses with 422.)"""
    body = {
        "detail": "1 invalid field(s) in the batch; nothing was stored",
        "errors": [{"loc": ["events", 1, "actor", "id"], "msg": "too long", "type": "string_too_long"}],
        "refused": [{"index": 1, "reason": "invalid"}],
    }
    sizes, transport = _answering(422, body)
    dead = tmp_path / "dead.jsonl"
    client = AuditClient("http://audit.test", "tok", transport=transport, dead_letter_path=dead, retry=QUICK)
    events = [event() for _ in range(3)]
    try:
        for e in events:
            client.record(e)
        assert client.flush(timeout=10)
    finally:
        client.close(timeout=1)
    assert sizes == [3, 2]
    [line] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert (line["event"]["event_id"], line["status"], line["reason"]) == (
        events[1]["event_id"],
        422,
        "invalid: actor.id: too long",
    )
