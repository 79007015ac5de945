"""The SDK client's behaviour at the HTTP seam: batching, flush and close,
retries, dead letters, bounds, counters, access(), fork. ``httpx.MockTransport``
stands in for the service (as in httpx's own tests); storage is tested
against the real service in tests/test_sdk_faults.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import auditsvc_sdk
import httpx
import pytest
from auditsvc_sdk import (
    AsyncAuditClient,
    AuditClient,
    ClientClosed,
    InvalidEvent,
    Outcome,
    QueueFull,
    RetryPolicy,
)
from auditsvc_sdk._retry import parse_retry_after

from .conftest import ScriptedClock, event

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.05)
MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class FakeService:
    """Answers like POST /v1/events; ``script`` can override answers in order."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.stored: set[str] = set()
        self.script: list[Callable[[list[dict[str, Any]]], httpx.Response]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        with self.lock:
            self.requests.append(events)
            if self.script:
                return self.script.pop(0)(events)
            results = []
            for e in events:
                status = "duplicate" if e["event_id"] in self.stored else "accepted"
                self.stored.add(e["event_id"])
                results.append({"event_id": e["event_id"], "status": status, "seq": len(self.stored) - 1})
        return httpx.Response(200, json={"results": results, "head": {"tree_size": len(self.stored)}})

    def ids(self) -> list[str]:
        return [e["event_id"] for batch in self.requests for e in batch]


def status(code: int, body: dict[str, Any] | None = None, **headers: str) -> Callable[..., httpx.Response]:
    return lambda _events: httpx.Response(code, json=body or {"detail": "x"}, headers=headers)


def refuse_connection(_events: list[dict[str, Any]]) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def make_client(fake: FakeService) -> Iterator[Callable[..., AuditClient]]:
    clients: list[AuditClient] = []

    def _make(**options: Any) -> AuditClient:
        options.setdefault("retry", FAST)
        client = AuditClient("http://audit.test", "tok", transport=httpx.MockTransport(fake), **options)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close(timeout=1)
        # The suite turns the SDK's caught internal failures back into failures.
        assert client.counters().internal_errors == 0


def test_public_names_are_pinned() -> None:
    assert sorted(auditsvc_sdk.__all__) == sorted(
        [
            "FORMAT_VERSION", "AccessScope", "Action", "Actor", "ActorType", "AsyncAuditClient", "AuditClient",
            "AuditError", "ClientClosed", "Counters", "EventRejected", "FHIRError", "HL7v2Error", "Identifier",
            "InvalidEvent", "Outcome", "events_from_fhir", "events_from_hl7v2",
            "Patient", "PhiAccess", "QueueFull", "RecordTemplate", "RetryPolicy", "ServiceError", "SpoolFull",
            "SpoolLocked", "SpoolUnsupported", "SystemRef", "TransportError", "UnsupportedFormatVersion",
            "canonical_json",
            "canonical_record", "chain_hash", "check_format_version", "genesis_hash", "leaf_hash", "make_record",
            "new_event_id",
            # chain format verification: Merkle proofs, signed notes, evidence packages
            "EMPTY_ROOT", "CompactRange", "ProofError", "RootMismatchError", "root_from_leaf_hashes",
            "verify_consistency", "verify_inclusion", "Checkpoint", "CosignatureVerifier", "NoteError", "NoteSigner",
            "NoteVerifier", "open_checkpoint", "open_note", "sign_note", "verify_cosignature", "EvidenceError",
            "EvidenceRejected", "EvidenceReport", "EvidenceUnreadable", "verify_package",
        ]
    )  # fmt: skip
    for name in auditsvc_sdk.__all__:
        assert hasattr(auditsvc_sdk, name)


def test_batches_go_by_size_and_flush_sends_the_rest(make_client, fake) -> None:
    client = make_client(max_batch=10, flush_interval=60)
    sent = [event() for _ in range(25)]
    for e in sent:
        client.record(e)
    wait_until(lambda: len(fake.requests) >= 2)  # full batches go without a flush
    assert client.flush(timeout=5)
    assert [len(batch) for batch in fake.requests] == [10, 10, 5]
    assert fake.ids() == [e["event_id"] for e in sent]
    counters = client.counters()
    assert (counters.recorded, counters.sent, counters.queue_depth, counters.retried) == (25, 25, 0, 0)


def test_a_lone_event_goes_after_the_flush_interval(make_client, fake) -> None:
    client = make_client(flush_interval=0.05)
    client.record(event())
    wait_until(lambda: client.counters().sent == 1)
    assert len(fake.requests) == 1


def test_event_id_is_assigned_at_record_and_kept(make_client, fake) -> None:
    client = make_client()
    body = event()
    del body["event_id"]
    client.record(body)
    assert client.flush(5)
    assert len(fake.ids()) == 1 and fake.ids()[0]


def test_invalid_event_raises_at_once_naming_the_field_not_the_value(make_client, fake) -> None:
    client = make_client()
    secret = "MRN-SECRET-99"
    with pytest.raises(InvalidEvent) as caught:
        client.record(event([(MRN, secret)], action="X"))
    assert "action" in str(caught.value) and secret not in str(caught.value)
    with pytest.raises(InvalidEvent) as caught:
        client.record({**event([(MRN, secret)]), "occurred_at": "yesterday"})
    assert "occurred_at" in str(caught.value) and secret not in str(caught.value)
    assert client.counters().recorded == 0 and fake.requests == []


def test_resend_after_503_and_connection_errors_carries_the_same_event_ids(make_client, fake) -> None:
    fake.script = [status(503, **{"Retry-After": "0"}), refuse_connection, status(429), status(408), status(500)]
    client = make_client()
    sent = [event() for _ in range(3)]
    for e in sent:
        client.record(e)
    assert client.flush(timeout=10)
    assert len(fake.requests) == 6
    assert all([e["event_id"] for e in batch] == [e["event_id"] for e in sent] for batch in fake.requests)
    counters = client.counters()
    assert (counters.sent, counters.retried, counters.dead_lettered) == (3, 15, 0)


def test_a_lost_answer_is_resent_and_answered_duplicate(make_client, fake) -> None:
    def store_then_fail(events: list[dict[str, Any]]) -> httpx.Response:
        fake.stored.update(e["event_id"] for e in events)
        raise httpx.ReadTimeout("answer lost")

    fake.script = [store_then_fail]
    client = make_client()
    client.record(event())
    assert client.flush(timeout=5)
    counters = client.counters()
    assert (counters.sent, counters.duplicates, counters.retried) == (0, 1, 1)


def test_backoff_grows_with_jitter_and_retry_after_is_honoured_with_a_cap() -> None:
    policy = RetryPolicy(initial_backoff=1, max_backoff=8, jitter=0.5, max_retry_after=60)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0  # jittered
    assert policy.delay(1, "7") == 7
    assert policy.delay(1, "3600") == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and policy.delay(1, "soon") <= 1


def test_refused_events_go_to_the_dead_letter_file_and_the_good_ones_are_resent(
    make_client, fake, tmp_path, caplog
) -> None:
    secret = "MRN-DEAD-0042"
    bad = event([(MRN, secret)])
    body = {"detail": "1 invalid field(s)", "errors": [{"loc": ["events", 1, "actor", "id"], "msg": "too long"}]}
    fake.script = [status(422, body)]
    dead = tmp_path / "dead.jsonl"
    client = make_client(dead_letter_path=dead)
    good = [event(), event()]
    with caplog.at_level(logging.INFO, logger="auditsvc_sdk"):
        for e in (good[0], bad, good[1]):
            client.record(e)
        assert client.flush(timeout=5)
    assert [len(b) for b in fake.requests] == [3, 2]
    assert fake.ids()[3:] == [good[0]["event_id"], good[1]["event_id"]]
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"]["event_id"] == bad["event_id"]
    assert lines[0]["status"] == 422 and lines[0]["reason"] == "actor.id: too long"
    assert dead.stat().st_mode & 0o777 == 0o600
    assert client.counters().dead_lettered == 1 and client.counters().sent == 2
    warnings = [r for r in caplog.records if "dead-letter" in r.getMessage()]
    assert len(warnings) == 1 and bad["event_id"] in warnings[0].getMessage()
    assert secret not in caplog.text


def test_a_refusal_naming_no_event_is_narrowed_down_one_by_one(make_client, fake, tmp_path) -> None:
    bad = event()

    def refuse_if_bad(events: list[dict[str, Any]]) -> httpx.Response:
        if any(e["event_id"] == bad["event_id"] for e in events):
            return httpx.Response(400, json={"detail": "request body is not valid JSON"})
        return httpx.Response(200, json={"results": [{"status": "accepted"} for _ in events]})

    fake.script = [refuse_if_bad] * 4
    client = make_client(dead_letter_path=tmp_path / "dead.jsonl")
    for e in (event(), bad, event()):
        client.record(e)
    assert client.flush(timeout=5)
    assert [len(b) for b in fake.requests] == [3, 1, 1, 1]
    assert client.counters().dead_lettered == 1 and client.counters().sent == 2


def test_413_splits_the_batch(make_client, fake) -> None:
    fake.script = [status(413)]
    client = make_client()
    for _ in range(4):
        client.record(event())
    assert client.flush(timeout=5)
    assert [len(b) for b in fake.requests] == [4, 2, 2]
    assert client.counters().sent == 4


def test_a_refused_token_keeps_the_events_and_is_logged_once(make_client, fake, caplog) -> None:
    fake.script = [status(401)] * 3
    client = make_client(retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.02))
    with caplog.at_level(logging.INFO, logger="auditsvc_sdk"):
        client.record(event())
        assert client.flush(timeout=5)
    assert len(fake.requests) == 4
    assert client.counters().sent == 1 and client.counters().dead_lettered == 0
    assert sum("HTTP 401" in r.getMessage() for r in caplog.records) == 1


def test_full_queue_blocks_then_raises_and_drops_nothing(make_client, fake) -> None:
    fake.script = [refuse_connection] * 10_000
    client = make_client(max_queue=3, block_timeout=5, retry=RetryPolicy(initial_backoff=5, max_backoff=5))
    for _ in range(3):
        client.record(event())
    client._clock = clock = ScriptedClock(100.0, 104.99, 105.0)  # starts, waits short of the bound, reaches it
    with pytest.raises(QueueFull):
        client.record(event())
    assert clock.now - 100.0 >= 5 and clock.reads >= 3  # it waited for room, and gave up at the bound
    counters = client.counters()
    assert (counters.recorded, counters.queue_depth) == (3, 3)


def test_record_waits_for_room_and_succeeds_when_it_frees_up(make_client, fake) -> None:
    gate = threading.Event()

    def slow(events: list[dict[str, Any]]) -> httpx.Response:
        gate.wait(5)
        return httpx.Response(200, json={"results": [{"status": "accepted"} for _ in events]})

    fake.script = [slow]
    client = make_client(max_queue=2, block_timeout=5, max_batch=2)
    client.record(event())
    client.record(event())
    threading.Timer(0.1, gate.set).start()
    client.record(event())  # blocks until the first batch is acknowledged
    assert client.flush(5) and client.counters().sent == 3


def test_flush_says_false_when_the_service_stays_down(make_client, fake) -> None:
    fake.script = [refuse_connection] * 10_000
    client = make_client()
    client.record(event())
    assert client.flush(timeout=0.2) is False
    assert client.counters().queue_depth == 1 and client.counters().retried > 0


def test_close_interrupts_the_backoff_and_reports_what_is_left(make_client, fake, caplog) -> None:
    fake.script = [status(503, **{"Retry-After": "3600"})] * 10
    client = make_client(retry=RetryPolicy(max_retry_after=3600))
    client.record(event())
    wait_until(lambda: len(fake.requests) == 1)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="auditsvc_sdk"):
        assert client.close(timeout=0.5) is False
    assert time.monotonic() - started < 2
    assert "1 events" in caplog.text and "lost" in caplog.text
    assert client.close() is False  # idempotent
    with pytest.raises(ClientClosed):
        client.record(event())


def test_flushed_before_close_and_refused_after(make_client, fake) -> None:
    client = make_client(flush_interval=60)
    client.record(event())
    assert client.close(timeout=5) is True
    assert len(fake.requests) == 1
    with pytest.raises(ClientClosed):
        client.record(event())


def test_access_records_success_and_failure_with_the_active_span(make_client, fake) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    client = make_client(defaults={"source": {"system_id": "epic-fhir"}, "actor": {"id": "svc", "type": "system"}})
    common = {"patient": [(MRN, "MRN-ACCESS-1")], "data_elements": ["Observation"], "event_type": "fhir-rest"}
    span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1)))
    with trace.use_span(span), client.access(destination="fhir-patient-app", **common) as scope:
        assert scope.event_id
    with pytest.raises(KeyError), client.access(destination="fhir-patient-app", **common):
        raise KeyError("boom")
    with client.access(destination="fhir-patient-app", **common) as scope:
        scope.outcome = Outcome.MINOR_FAILURE
    with pytest.raises(InvalidEvent):
        client.access(destination="fhir-patient-app", patient=[], data_elements=["X"], event_type="q")
    assert client.flush(5)
    ok, failed, minor = [e for batch in fake.requests for e in batch]
    assert (ok["outcome"], failed["outcome"], minor["outcome"]) == (0, 8, 4)
    assert ok["trace_id"] == f"{0xABC:032x}" and ok["span_id"] == f"{0xDEF:016x}"
    assert "trace_id" not in failed
    assert ok["source"] == {"system_id": "epic-fhir"} and ok["destination"] == {"system_id": "fhir-patient-app"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_an_empty_queue_and_its_own_connection(make_client, fake, tmp_path) -> None:
    client = make_client(flush_interval=60)
    client.record(event())
    spooled = make_client(spool_dir=tmp_path / "spool", flush_interval=60)
    spooled.record(event())
    pid = os.fork()
    if pid == 0:  # the child: report by exit code only
        code = 0
        try:
            if client.counters().queue_depth != 0:
                code = 2
            client.record(event())
            if not client.flush(5) or client.counters().sent != 1:
                code = 3
            try:
                spooled.record(event())
                code = 4
            except ClientClosed:
                pass
        except BaseException:
            code = 5
        os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert client.flush(5) and client.counters().sent == 1
    assert spooled.flush(5) and spooled.counters().sent == 1


def test_async_client_batches_retries_and_dead_letters(fake, tmp_path) -> None:
    bad = event()
    body = {"errors": [{"loc": ["events", 2, "patient"], "msg": "bad"}]}
    fake.script = [status(503, **{"Retry-After": "0"}), refuse_connection, status(422, body)]

    async def main() -> AsyncAuditClient:
        async with AsyncAuditClient(
            "http://audit.test", "tok", transport=httpx.MockTransport(fake), retry=FAST,
            dead_letter_path=tmp_path / "dead.jsonl", max_batch=3, flush_interval=60,
        ) as client:  # fmt: skip
            for e in (event(), event(), bad, event()):
                await client.record(e)
            assert await client.flush(timeout=5)
            async with client.access(
                patient=[(MRN, "MRN-ASYNC")], data_elements=["Patient"], event_type="fhir-rest",
                source="epic-fhir", destination="app", actor={"id": "a", "type": "system"},
            ):  # fmt: skip
                pass
        return client

    client = asyncio.run(main())
    counters = client.counters()
    assert (counters.sent, counters.dead_lettered, counters.queue_depth) == (4, 1, 0)
    assert [len(b) for b in fake.requests] == [3, 3, 3, 2, 1, 1]
    assert json.loads((tmp_path / "dead.jsonl").read_text())["event"]["event_id"] == bad["event_id"]


def test_async_full_queue_raises(fake) -> None:
    fake.script = [refuse_connection] * 10_000

    async def main() -> None:
        client = AsyncAuditClient(
            "http://audit.test", "tok", transport=httpx.MockTransport(fake), max_queue=2, block_timeout=0.1,
            retry=RetryPolicy(initial_backoff=5, max_backoff=5),
        )  # fmt: skip
        await client.record(event())
        await client.record(event())
        with pytest.raises(QueueFull):
            await client.record(event())
        assert await client.close(timeout=0.1) is False

    asyncio.run(main())
