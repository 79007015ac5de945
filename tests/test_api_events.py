"""Ingest through the real API: acceptance, idempotency, hashes read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from auditsvc_sdk import canonical_json, chain_hash, genesis_hash, leaf_hash

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query


def test_batch_is_accepted_with_gapless_seqs_and_head(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as client:
        response = client.post("/v1/events", json={"events": [event() for _ in range(3)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3
    assert [r["seq"] for r in body["results"]] == [0, 1, 2]
    assert body["head"]["tree_size"] == 3
    assert len(body["head"]["chain_hash"]) == 64


def test_resent_batch_is_answered_duplicate_and_stores_nothing(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    batch = {"events": [event() for _ in range(5)]}
    with service.client(token) as client:
        first = client.post("/v1/events", json=batch).json()
        again = client.post("/v1/events", json=batch)
    assert again.status_code == 200
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 5
    assert [r["seq"] for r in again.json()["results"]] == [r["seq"] for r in first["results"]]
    assert again.json()["head"] == first["head"]
    assert query(service.settings.database_url, "SELECT count(*) AS n FROM events")[0]["n"] == 5


def test_event_repeated_inside_one_batch_is_stored_once(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    one = event()
    with service.client(token) as client:
        body = client.post("/v1/events", json={"events": [one, one]}).json()
    assert [(r["status"], r["seq"]) for r in body["results"]] == [("accepted", 0), ("duplicate", 0)]


def test_nanosecond_and_offset_timestamps_hash_as_stored(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    auditor = service.token(Role.AUDITOR)
    sent = event(occurred_at="2026-03-08T01:59:59.999999999-05:00")  # sub-microsecond digits are truncated
    with service.client(token) as client:
        client.post("/v1/events", json={"events": [sent]}).raise_for_status()
    with service.client(auditor) as client:
        read = client.get(f"/v1/events/{sent['event_id']}")
    assert read.status_code == 200, read.text
    body = read.json()
    record = body["record"]
    assert record["occurred_at"] == "2026-03-08T06:59:59.999999Z"
    assert record["seq"] == 0 and record["v"] == 2
    # The hashes recompute from the record exactly as returned.
    leaf = leaf_hash(canonical_json(record))
    assert body["leaf_hash"] == leaf.hex()
    assert body["chain_hash"] == chain_hash(genesis_hash(service.settings.log_name), leaf).hex()
    # ... and from the bytes PostgreSQL holds.
    row = query(service.settings.database_url, "SELECT record, occurred_at FROM events WHERE seq = 0")[0]
    assert leaf_hash(row["record"].encode()) == leaf
    assert json.loads(row["record"]) == record
    assert row["occurred_at"] == datetime(2026, 3, 8, 6, 59, 59, 999999, tzinfo=UTC)


def test_unknown_event_is_404(service: Service) -> None:
    auditor = service.token(Role.AUDITOR)
    with service.client(auditor) as client:
        response = client.get("/v1/events/0192f3a4-1b2c-7d3e-8f40-123456789abc")
    assert response.status_code == 404


def test_emitter_cannot_claim_a_source_system_it_is_not_bound_to(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as client:
        response = client.post("/v1/events", json={"events": [event(), event(source="cerner-b")]})
    assert response.status_code == 403
    assert "events[1].source.system_id" in response.json()["detail"]
    assert query(service.settings.database_url, "SELECT count(*) AS n FROM events")[0]["n"] == 0


def test_health_and_readiness(service: Service) -> None:
    with service.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
