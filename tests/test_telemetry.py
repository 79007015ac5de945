"""Telemetry: spans, metrics and logs exist, say what an operator needs, and
never carry PHI.

The in-process tests install the SDK's in-memory exporters once for this
module (OpenTelemetry's providers are set once per process), drive a real
service on real PostgreSQL through a realistic flow — a batch, its resend, three
rejected batches, reads with patient identifiers in the query string, a
patient report, a checkpoint — and then search every span, metric and log
line for the patient identifiers used. A raw (unscrubbed) copy of the spans
shows that the instrumentation did see those identifiers, so the search is
not vacuous. Two tests run the real command line: ``auditsvc serve`` with
JSON logs, console spans and ``/metrics``, and ``auditsvc verify`` on a
tampered store.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.telemetry import Telemetry, export_plan, setup_telemetry
from auditsvc.telemetry.logs import AccessLogPathOnly, JsonFormatter
from auditsvc.telemetry.providers import HTTP_METRIC_ATTRIBUTES, service_resource
from auditsvc.telemetry.scrub import scrub_span

from .conftest import (
    REPO,
    TEST_SECRET_KEY,
    _admin,
    _with_database,
    env_for,
    event,
    free_port,
    make_token,
    query,
    running_service,
)
from .test_tamper import tamper

# The patient of this module: an identifier value and system, and a name in
# the event's free-form attributes. None of them may appear in telemetry.
PHI_VALUE = f"MRN-PHI-{secrets.token_hex(5)}"
PHI_SYSTEM = f"urn:oid:2.16.840.1.113883.3.{secrets.randbelow(10**9)}"
PHI_NAME = f"Doe-{secrets.token_hex(4)}"
PHI = (PHI_VALUE, PHI_SYSTEM, PHI_NAME)
PHI_QUERY = {"patient.identifier": f"{PHI_SYSTEM}|{PHI_VALUE}", "name": PHI_NAME}


def patient_event(**overrides: Any) -> dict[str, Any]:
    body = event([(PHI_SYSTEM, PHI_VALUE)], attributes={"patient_name": PHI_NAME})
    body.update(overrides)
    return body


def assert_no_phi(text: str, where: str) -> None:
    leaked = [marker for marker in PHI if marker in text]
    assert not leaked, f"PHI {leaked} in {where}"


def points(data: MetricsData, name: str) -> list[Any]:
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def total(data: MetricsData, name: str, **attributes: Any) -> float:
    return sum(p.value for p in points(data, name) if attributes.items() <= dict(p.attributes or {}).items())


# -- Unit: the scrubber, the export plan, the resource, the log formats ------


def test_scrubber_removes_query_strings_literals_and_exception_texts() -> None:
    raw = ReadableSpan(
        name="GET /fhir/AuditEvent?patient.identifier=" + PHI_VALUE,
        attributes={
            "http.url": f"http://h/fhir/AuditEvent?patient.identifier={PHI_VALUE}",
            "http.target": f"/fhir/AuditEvent?x={PHI_VALUE}",
            "url.query": f"patient.identifier={PHI_VALUE}",
            "db.statement": f"SELECT 1 FROM events WHERE value = '{PHI_VALUE}' AND seq = $1",
            "db.statement.parameters": f"('{PHI_VALUE}',)",
            "http.request.header.x_patient": (PHI_VALUE,),
            "http.route": "/fhir/AuditEvent",
            "auditsvc.append.events": 3,
        },
        events=[Event("exception", {"exception.type": "X", "exception.message": PHI_VALUE})],
        status=Status(StatusCode.ERROR, f"UniqueViolationError: Key (value)=({PHI_VALUE})"),
    )
    clean = scrub_span(raw)
    assert_no_phi(clean.to_json(), "a scrubbed span")
    assert PHI_VALUE in raw.to_json()  # the fixture itself leaks, or the test proves nothing
    assert clean.attributes == {
        "http.url": "http://h/fhir/AuditEvent",
        "http.target": "/fhir/AuditEvent",
        "db.statement": "SELECT 1 FROM events WHERE value = '?' AND seq = $1",
        "http.route": "/fhir/AuditEvent",
        "auditsvc.append.events": 3,
    }
    assert clean.name == "GET /fhir/AuditEvent"
    assert clean.status.status_code is StatusCode.ERROR
    assert dict(clean.events[0].attributes or {}) == {"exception.type": "X"}


@pytest.mark.parametrize(
    ("env", "prometheus", "traces", "metrics"),
    [
        ({}, False, (), ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, False, ("otlp",), ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, False, ("otlp",), ()),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"},
            False,
            (),
            ("otlp",),
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"}, True, (), ()),
        (
            {"OTEL_TRACES_EXPORTER": "console,zipkin", "OTEL_METRICS_EXPORTER": "prometheus"},
            False,
            ("console",),
            ("prometheus",),
        ),
        ({}, True, (), ("prometheus",)),
    ],
    ids=["nothing-set", "endpoint", "traces-endpoint", "traces-none", "sdk-disabled", "named", "prometheus-setting"],
)
def test_exporters_only_when_the_environment_asks(env, prometheus, traces, metrics) -> None:
    plan = export_plan(env, prometheus)
    assert (plan.traces, plan.metrics) == (traces, metrics)


def test_service_name_defaults_to_auditsvc_and_follows_otel_service_name(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    default = service_resource(os.environ).attributes
    assert default["service.name"] == "auditsvc"
    assert default["service.instance.id"]  # workers and pods report side by side
    monkeypatch.setenv("OTEL_SERVICE_NAME", "audit-prod")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    named = service_resource(os.environ).attributes
    assert (named["service.name"], named["deployment.environment"]) == ("audit-prod", "prod")


def test_json_log_lines_carry_the_active_trace_and_cut_query_strings() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None)
    record.args = ("10.0.0.1:5000", "GET", f"/fhir/AuditEvent?patient.identifier={PHI_VALUE}", "1.1", 200)
    assert AccessLogPathOnly().filter(record)
    span = trace.NonRecordingSpan(
        trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=False)
    )
    with trace.use_span(span):
        line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"
    assert line["url.path"] == "/fhir/AuditEvent"
    assert line["message"] == '10.0.0.1:5000 - "GET /fhir/AuditEvent HTTP/1.1" 200'
    assert {"timestamp", "level", "logger"} <= line.keys()
    try:
        raise ValueError(f"DETAIL: Key (value)=({PHI_VALUE}) already exists")
    except ValueError:
        failure = logging.LogRecord("auditsvc", logging.ERROR, __file__, 1, "append failed", None, sys.exc_info())
    line = json.loads(JsonFormatter().format(failure))
    assert line["exception.type"] == "ValueError"
    assert_no_phi(json.dumps(line), "a logged exception")


# -- In process: a real service, in-memory exporters ------------------------


@dataclass
class Captured:
    spans: list[ReadableSpan]  # as exported (scrubbed)
    raw: list[ReadableSpan]  # as recorded, before the scrubbing exporter
    metrics: MetricsData
    logs: list[str]
    tree_size: int
    settings: Settings  # of the flow's database, for the command line


@pytest.fixture(scope="module")
def telemetry() -> Iterator[tuple[Telemetry, InMemorySpanExporter, InMemorySpanExporter, InMemoryMetricReader]]:
    spans, raw, reader = InMemorySpanExporter(), InMemorySpanExporter(), InMemoryMetricReader()
    handle = setup_telemetry(Settings(), span_exporters=[spans], metric_readers=[reader])
    assert handle.tracing and handle.metrics, "telemetry was already set up in this process"
    assert handle.tracer_provider is not None
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(raw))  # unscrubbed, for the test only
    yield handle, spans, raw, reader
    handle.shutdown()


@pytest.fixture(scope="module")
def flow(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory, telemetry) -> Iterator[Captured]:
    """One realistic pass through the service, everything it exported kept."""
    _, exported, raw, reader = telemetry
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    url = _with_database(server_url, name)
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path_factory.mktemp("telemetry") / "data",
        log_name="test.auditsvc.local/log",
    )
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("auditsvc"), logging.getLogger("uvicorn.access")]
    try:
        with running_service(settings) as service:
            saved = [(logger, logger.level) for logger in loggers]
            for logger in loggers:
                logger.addHandler(handler)
                logger.setLevel(logging.INFO)
            try:
                emitter = service.token(Role.EMITTER, ["epic-adt"])
                auditor = service.token(Role.AUDITOR)
                officer = service.token(Role.PRIVACY_OFFICER)
                admin = service.token(Role.ADMIN)
                batch = [patient_event() for _ in range(3)]
                with service.client(emitter) as client:
                    first = client.post("/v1/events", json={"events": batch})
                    assert first.status_code == 200, first.text
                    resend = client.post("/v1/events", json={"events": batch})
                    assert [r["status"] for r in resend.json()["results"]] == ["duplicate"] * 3
                    invalid = patient_event()
                    del invalid["action"]
                    assert client.post("/v1/events", json={"events": [invalid]}).status_code == 422
                    malformed = b'{"events": [' + PHI_VALUE.encode() + b"]}"
                    response = client.post(
                        "/v1/events", content=malformed, headers={"content-type": "application/json"}
                    )
                    assert response.status_code == 400
                    foreign = patient_event(source={"system_id": "not-this-emitters"})
                    assert client.post("/v1/events", json={"events": [foreign]}).status_code == 403
                event_id = batch[0]["event_id"]
                with service.client(auditor) as client:
                    # Query strings with PHI (ignored or refused by the API): never recorded.
                    client.get(f"/v1/events/{event_id}", params=PHI_QUERY)
                    client.get("/v1/proofs/inclusion", params={"seq": 0, "tree_size": 3, **PHI_QUERY})
                    client.get("/fhir/AuditEvent", params=PHI_QUERY)
                with service.client(officer) as client:
                    report = client.post(
                        "/v1/reports/patient-access",
                        json={"identifier": {"system": PHI_SYSTEM, "value": PHI_VALUE}},
                    )
                    assert report.status_code == 200, report.text
                with service.client(admin) as client:
                    assert client.post("/v1/checkpoints").status_code == 200
                metrics = reader.get_metrics_data()  # while the service runs: its gauges report
            finally:
                for logger, level in saved:
                    logger.removeHandler(handler)
                    logger.setLevel(level)
        (row,) = query(url, "SELECT count(*) AS n FROM events")
        yield Captured(
            spans=list(exported.get_finished_spans()),
            raw=list(raw.get_finished_spans()),
            metrics=metrics,
            logs=[line for line in logs.getvalue().splitlines() if line],
            tree_size=int(row["n"]),
            settings=settings,
        )
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_spans(flow: Captured, name: str) -> list[ReadableSpan]:
    return [s for s in flow.spans if s.kind is SpanKind.SERVER and s.name == name]


@pytest.mark.db
def test_request_spans_are_named_by_route_and_carry_no_query_string(flow: Captured) -> None:
    appends = server_spans(flow, "POST /v1/events")
    assert len(appends) == 5  # the batch, its resend, three refused
    statuses = sorted(s.attributes["http.status_code"] for s in appends)
    assert statuses == [200, 200, 400, 403, 422]
    (read,) = server_spans(flow, "GET /v1/events/{event_id}")
    assert read.attributes["http.route"] == "/v1/events/{event_id}"
    assert "?" not in str(read.attributes.get("http.url", "")) and "url.query" not in read.attributes
    # The instrumentation did record the query: it is the scrubbing exporter that removed it.
    (raw_read,) = [s for s in flow.raw if s.name == "GET /v1/events/{event_id}" and s.kind is SpanKind.SERVER]
    assert PHI_VALUE in str(raw_read.attributes.get("http.url", "")) + str(raw_read.attributes.get("url.query", ""))
    assert not [s for s in flow.spans if str(s.name).startswith(("GET /healthz", "GET /readyz"))]
    # FastAPI's own telemetry (which would record url.query) stays off: one server span per request.
    assert not [s for s in flow.spans if s.instrumentation_scope and s.instrumentation_scope.name == "fastapi"]


@pytest.mark.db
def test_database_spans_carry_statements_with_placeholders_never_values(flow: Captured) -> None:
    db = [s for s in flow.spans if s.kind is SpanKind.CLIENT and s.attributes.get("db.system") == "postgresql"]
    assert len(db) > 10
    statements = [str(s.attributes.get("db.statement", s.attributes.get("db.query.text", ""))) for s in db]
    assert all(statements) and any("$1" in sql for sql in statements)
    assert not [s for s in db if "db.statement.parameters" in s.attributes]
    # Before scrubbing too: the service's SQL never inlines a value.
    raw_sql = "\n".join(str(s.attributes.get("db.statement", "")) for s in flow.raw if s.kind is SpanKind.CLIENT)
    assert_no_phi(raw_sql, "SQL statements")


@pytest.mark.db
def test_group_commit_span_has_the_batch_size_and_outcome_inside_the_request_trace(flow: Captured) -> None:
    groups = [s for s in flow.spans if s.name == "auditsvc.append.group"]
    first, resend = groups[0], groups[1]
    assert first.attributes["auditsvc.append.events"] == 3
    assert first.attributes["auditsvc.append.batches"] == 1
    assert (first.attributes["auditsvc.append.accepted"], first.attributes["auditsvc.append.duplicate"]) == (3, 0)
    assert first.attributes["auditsvc.tree.size"] == 3
    assert (resend.attributes["auditsvc.append.accepted"], resend.attributes["auditsvc.append.duplicate"]) == (0, 3)
    request = server_spans(flow, "POST /v1/events")[0]
    assert first.context.trace_id == request.context.trace_id  # the request's trace shows its append
    inserts = [s for s in flow.spans if s.parent is not None and s.parent.span_id == first.context.span_id]
    assert any(s.kind is SpanKind.CLIENT for s in inserts), "the append's database calls are its children"


@pytest.mark.db
def test_metrics_count_accepted_duplicate_and_rejected_batches(flow: Captured) -> None:
    m = flow.metrics
    assert total(m, "auditsvc.events.accepted") == flow.tree_size  # every stored event accepted once
    assert total(m, "auditsvc.events.duplicate") == 3
    rejected = {p.attributes["auditsvc.reason"]: p.value for p in points(m, "auditsvc.batches.rejected")}
    assert rejected == {"invalid_input": 1, "malformed_body": 1, "forbidden": 1}
    (batches,) = points(m, "auditsvc.append.batch.size")
    assert batches.count == flow.tree_size - 3 + 2 and batches.max == 3  # 2 posts, 1 per read-audit event
    (groups,) = points(m, "auditsvc.append.group.size")
    assert 1 <= groups.count <= batches.count and groups.max == 3
    (latency,) = points(m, "auditsvc.append.duration")
    assert latency.attributes == {"auditsvc.outcome": "committed"} and latency.count == batches.count
    assert 0 < latency.sum < 30
    (transactions,) = points(m, "auditsvc.append.transaction.duration")
    assert transactions.count == groups.count


@pytest.mark.db
def test_gauges_report_tree_size_and_checkpoint_age_and_lag(flow: Captured) -> None:
    m = flow.metrics
    (size,) = points(m, "auditsvc.tree.size")
    assert size.value == flow.tree_size
    (age,) = points(m, "auditsvc.checkpoint.age")
    assert 0 <= age.value < 60  # the flow ended by signing one
    (lag,) = points(m, "auditsvc.checkpoint.lag")
    assert lag.value == 0
    assert total(m, "auditsvc.checkpoint.failures") == 0


@pytest.mark.db
def test_http_metrics_keep_only_bounded_attributes(flow: Captured) -> None:
    durations = points(flow.metrics, "http.server.duration") + points(flow.metrics, "http.server.request.duration")
    assert durations
    for point in durations:
        assert set(point.attributes) <= HTTP_METRIC_ATTRIBUTES


@pytest.mark.db
def test_json_logs_carry_trace_ids_and_path_only_access_lines(flow: Captured) -> None:
    lines = [json.loads(line) for line in flow.logs]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) >= 10
    assert all(line.get("trace_id") for line in access if line["url.path"].startswith("/v1/"))
    traced = {s.context.trace_id for s in flow.spans}
    assert {int(line["trace_id"], 16) for line in access if "trace_id" in line} <= traced
    assert not [line for line in access if "?" in line["message"] or "?" in line["url.path"]]
    signed = [line for line in lines if line["logger"] == "auditsvc.checkpoints"]
    assert signed and signed[0].get("trace_id"), "an application log line inside a request has its trace id"


@pytest.mark.db
def test_no_patient_identifier_anywhere_in_spans_metrics_or_logs(flow: Captured) -> None:
    assert flow.spans and flow.logs
    raw = "\n".join(s.to_json() for s in flow.raw)
    assert PHI_VALUE in raw, "the flow must put PHI where instrumentation sees it, or this test proves nothing"
    for span in flow.spans:
        assert_no_phi(span.to_json(), f"span {span.name}")
    assert_no_phi(flow.metrics.to_json(), "metrics")
    assert_no_phi("\n".join(flow.logs), "log lines")


# -- The real command line ---------------------------------------------------


@pytest.mark.db
def test_verify_on_a_tampered_store_counts_a_failure_by_kind(flow: Captured) -> None:
    tamper(flow.settings, "UPDATE events SET record = replace(record, 'MSG0001', 'MSG0002') WHERE seq = 1")
    env = env_for(flow.settings) | {"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"}
    result = subprocess.run(
        [sys.executable, "-m", "auditsvc", "verify", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["kind"] == "leaf_hash_mismatch"  # stdout stays the report alone
    exported = [json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"resource_metrics"')]
    assert exported, result.stderr
    values: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for data in exported:
        for resource in data["resource_metrics"]:
            for scope in resource["scope_metrics"]:
                for metric in scope["metrics"]:
                    for point in metric["data"]["data_points"]:
                        values.setdefault(metric["name"], []).append((point["attributes"], point["value"]))
    assert ({"auditsvc.verify.kind": "leaf_hash_mismatch"}, 1) in values["auditsvc.verify.failures"]
    assert ({"auditsvc.verify.result": "tampered"}, 1) in values["auditsvc.verify.runs"]
    assert_no_phi(result.stdout + result.stderr, "verify output")


@pytest.mark.db
def test_serve_writes_json_logs_console_spans_and_prometheus_metrics_without_phi(settings: Settings) -> None:
    port = free_port()
    env = env_for(settings) | {
        "AUDITSVC_LOG_FORMAT": "json",
        "AUDITSVC_PROMETHEUS_METRICS": "true",
        "AUDITSVC_MIGRATE_ON_START": "false",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditsvc", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        emitter = make_token(settings, Role.EMITTER, ["epic-adt"])
        headers = {"Authorization": f"Bearer {emitter}"}
        batch = [patient_event(), patient_event()]
        assert httpx.post(f"{base}/v1/events", json={"events": batch}, headers=headers).status_code == 200
        httpx.get(f"{base}/v1/events/{uuid.uuid4()}", params=PHI_QUERY, headers=headers)
        scrape = httpx.get(f"{base}/metrics")
        assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
        assert re.search(r"^auditsvc_events_accepted_total(\{[^}]*\})? 2\.0$", scrape.text, re.M), scrape.text
        assert "auditsvc_append_duration_seconds_bucket" in scrape.text
        assert re.search(r"^auditsvc_tree_size(_events)?(\{[^}]*\})? 2\.0$", scrape.text, re.M), scrape.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every stderr line is JSON
    logs = [line for line in lines if "logger" in line]
    spans = [line for line in lines if "context" in line and "name" in line]
    access = [line for line in logs if line["logger"] == "uvicorn.access"]
    read = [line for line in access if line["url.path"].startswith("/v1/events/")]
    assert read and "?" not in read[0]["message"] and read[0]["trace_id"]
    assert any(span["name"] == "POST /v1/events" for span in spans)
    assert any(span["name"] == "auditsvc.append.group" for span in spans)
    assert_no_phi(out + err + scrape.text, "serve output and /metrics")


@pytest.mark.db
def test_serve_refuses_prometheus_metrics_with_several_workers(settings: Settings) -> None:
    env = env_for(settings) | {"AUDITSVC_PROMETHEUS_METRICS": "true", "AUDITSVC_MIGRATE_ON_START": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "auditsvc", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "one worker" in result.stderr
