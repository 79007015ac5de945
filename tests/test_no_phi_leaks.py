"""No patient identifier leaves the audit store (DESIGN.md invariant 7).

One full flow against the real service, with everything it emits captured:
every span (scrubbed, as any exporter gets it), every metric point, every
Python log record at DEBUG from every logger (uvicorn's access and error
logs included), every HTTP response's headers and body, the SDK's own error
texts, and the output of the command line run as subprocesses. Then every
identifier value the flow used is searched for in all of it, as is and
percent-encoded or JSON-escaped, in any letter case: there must be no hit.

The flow (``tests/phi_capture.py``, run as a child process because
OpenTelemetry's providers can be installed once per process and
``test_telemetry.py`` installs its own in this one):

- events built by ``events_from_hl7v2`` (the corpus's Epic ADT^A01) and
  ``events_from_fhir`` (a searchset of the corpus's Patient and
  Observation), delivered by ``AuditClient`` and flushed; resent;
- 33 invalid batches with the identifiers inside the invalid fields (too
  long, NUL, wrong types, unknown fields, an identifier as the event id,
  time, action...), malformed JSON around an identifier, invalid UTF-8,
  over-deep, over-long and oversized bodies (declared and chunked);
- an emitter sending for a system it is not bound to, no token, six bad
  ``Authorization`` values built from identifiers, wrong roles;
- patient-access reports by each identifier, found and not found, every
  page of one by cursor, through the SDK too, and 18 invalid report
  requests; event reads as auditor and privacy officer;
- a checkpoint signed by an admin; every GET route of the app (from its
  OpenAPI document) with the identifiers in the query string, and in place
  of each path parameter; 404 and 405 paths made of identifiers, trailing
  slashes (a redirect would repeat the query in ``Location``); identifiers
  in the User-Agent, the Referer and a custom header, which the HTTP
  instrumentation is configured to record;
- then ``auditsvc report patient`` (found, not found, three refused),
  ``auditsvc export`` and ``auditsvc verify --json`` as subprocesses with
  console telemetry on.

Where the service's own telemetry could carry them, the fixes are in
``auditsvc/telemetry/scrub.py`` (``loggable_path``: a path's segments that
are not route words or safe parameter values are withheld from the access
log and spans; the user agent is dropped from spans) and
``auditsvc/api/app.py`` (no trailing-slash redirects).

Excluded from the search, by design: what the test itself sent (request
URLs and bodies, and httpx's log lines of the test's own requests), and the
PHI a privacy officer asked for: the ``patient`` and ``events`` of a
report's answer, the ``patient_identifiers`` of an event read, and the
standard output of ``auditsvc report patient``.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from auditsvc.settings import Settings

from .conftest import REPO, TEST_SECRET_KEY, _admin, _with_database, env_for, query
from .phi_capture import (
    ACCT,
    ACCT_SYSTEM,
    CAPTURED_REQUEST_HEADERS,
    EMPI,
    MRN,
    MRN_SYSTEM,
    NAME,
    NEEDLES,
    UNKNOWN_MRN,
    Hit,
    LogCapture,
    RecordingTransport,
    capture_all_logging,
    find_leaks,
    haystack_exchanges,
    haystack_logs,
    haystack_metrics,
    haystack_spans,
    haystack_texts,
    metric_points,
    span_json,
)


@dataclass
class Captured:
    data: dict[str, Any]  # what the child process captured (see phi_capture.main)
    cli: dict[str, subprocess.CompletedProcess[str]]
    searched_output: dict[str, str]  # process output that is searched (the flow's and the command line's)
    evidence: str  # the evidence package's members, as text
    database: str  # every row of every table, as text
    settings: Settings
    seconds: float


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = env_for(settings) | {
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_TRACES_EXPORTER": "console",
        "AUDITSVC_LOG_LEVEL": "DEBUG",
    }
    return subprocess.run(
        [sys.executable, "-m", "auditsvc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def _package_text(path: Path) -> str:
    parts = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                parts.append(f"== {member.name}\n" + handle.read().decode("utf-8", "replace"))
    return "\n".join(parts)


def _database_text(url: str) -> str:
    tables = [
        r["table_name"]
        for r in query(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    ]
    return "\n".join(f"{t}: {row['row']}" for t in tables for row in query(url, f'SELECT t::text AS row FROM "{t}" t'))


@pytest.fixture(scope="module")
def captured(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    started = time.monotonic()
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    url = _with_database(server_url, name)
    tmp = tmp_path_factory.mktemp("no-phi")
    settings = Settings(
        database_url=url, secret_key=TEST_SECRET_KEY, data_dir=tmp / "data", log_name="test.auditsvc.local/log"
    )
    try:
        out = tmp / "captured.json"
        env = {k: v for k, v in env_for(settings).items() if not k.startswith("OTEL_")}
        env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"] = CAPTURED_REQUEST_HEADERS
        child = subprocess.run(
            [sys.executable, "-m", "tests.phi_capture", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )
        assert child.returncode == 0, child.stdout[-5000:] + child.stderr[-20000:]
        data = json.loads(out.read_text())
        package = tmp / "evidence.tar.gz"
        cli = {
            # The report is the privacy officer's own request for PHI: its
            # standard output is not searched (its standard error is).
            "report patient --format json": _cli(
                settings, "report", "patient", "--identifier", f"{MRN_SYSTEM}|{MRN}", "--format", "json"
            ),
            "report patient (not found)": _cli(
                settings, "report", "patient", "--identifier", f"{MRN_SYSTEM}|{UNKNOWN_MRN}", "--format", "json"
            ),
            # Refused requests: no report was produced, so everything is searched.
            "report patient (no system)": _cli(settings, "report", "patient", "--identifier", MRN),
            "report patient (value too long)": _cli(
                settings, "report", "patient", "--identifier", f"{ACCT_SYSTEM}|{ACCT * 20}"
            ),
            "report patient (bad --from)": _cli(
                settings, "report", "patient", "--identifier", f"{MRN_SYSTEM}|{MRN}", "--from", EMPI
            ),
            "export": _cli(settings, "export", "--out", str(package)),
            "verify --json": _cli(settings, "verify", "--json"),
        }
        # The flow's own process: anything it wrote outside logging (warnings, prints).
        searched_output: dict[str, str] = {"flow process stdout": child.stdout, "flow process stderr": child.stderr}
        for label, result in cli.items():
            if label.startswith("report patient --format") or label == "report patient (not found)":
                searched_output[f"`auditsvc {label}` stderr"] = result.stderr
            else:
                searched_output[f"`auditsvc {label}` stdout"] = result.stdout
                searched_output[f"`auditsvc {label}` stderr"] = result.stderr
        yield Captured(
            data=data,
            cli=cli,
            searched_output=searched_output,
            evidence=_package_text(package) if package.exists() else "",
            database=_database_text(url),
            settings=settings,
            seconds=time.monotonic() - started,
        )
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.db
def test_the_flow_ran_stored_the_identifiers_sealed_and_the_instrumentation_saw_them(captured: Captured) -> None:
    data, facts = captured.data, captured.data["facts"]
    # Everything was captured, and there is a lot of it.
    spans = data["spans"]
    server = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    statuses = {
        s["attributes"].get("http.status_code", s["attributes"].get("http.response.status_code")) for s in server
    }
    assert {200, 400, 401, 403, 404, 405, 413, 422} <= statuses, statuses
    assert any(s["name"] == "auditsvc.append.group" for s in spans)
    assert any(s["kind"] == "SpanKind.CLIENT" and s["attributes"].get("db.system") == "postgresql" for s in spans)
    points = metric_points(data["metrics"])
    accepted = sum(p["value"] for name, p in points if name == "auditsvc.events.accepted")
    assert accepted >= facts["sdk_events"]
    rejected = {p["attributes"]["auditsvc.reason"] for name, p in points if name == "auditsvc.batches.rejected"}
    assert {"invalid_input", "malformed_body", "forbidden"} <= rejected, rejected
    loggers = {r["logger"] for r in data["logs"]}
    assert {"uvicorn.access", "uvicorn.error"} <= loggers, loggers
    access = [r for r in data["logs"] if r["logger"] == "uvicorn.access"]
    assert len(access) >= sum(facts["statuses"].values())  # one line per request of the test's own
    assert any(x["client"].startswith("sdk:") for x in data["exchanges"])
    assert data["sdk_errors"]

    # The identifiers were stored, linked, found by each of them, and sealed.
    counters = facts["sdk_counters"]
    assert counters["sent"] >= facts["sdk_events"] and counters["duplicates"] >= 2, counters
    found = facts["report_events"]
    assert all(found[label] > 0 for label in ("mrn", "empi", "account number", "fhir logical id")), found
    assert found["unknown mrn"] == 0
    assert facts["linked_identifiers"]["mrn"] >= 4  # MRN, EMPI (HL7) + account number, FHIR id (FHIR)
    assert facts["pages"] > 2 and facts["paged_events"] >= facts["sdk_events"]
    assert MRN in captured.cli["report patient --format json"].stdout  # the excluded output does hold PHI
    sealed = query(
        str(captured.settings.database_url),
        "SELECT count(*) FILTER (WHERE value IS NULL AND value_enc IS NOT NULL) AS sealed, count(*) AS n"
        " FROM patient_identifiers WHERE system = ANY($1::text[])",
        [MRN_SYSTEM, ACCT_SYSTEM],
    )[0]
    assert sealed["n"] >= 2 and sealed["sealed"] == sealed["n"], dict(sealed)
    at_rest = find_leaks(haystack_texts({"database": captured.database, "evidence package": captured.evidence}))
    assert not at_rest, "identifiers in clear at rest:\n" + "\n".join(map(str, at_rest[:20]))
    assert "events" in captured.database and captured.evidence

    # Signed, and intact.
    assert facts["checkpoint_tree_size"] >= facts["sdk_events"]
    verify = captured.cli["verify --json"]
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
    assert captured.cli["export"].returncode == 0, captured.cli["export"].stderr

    # Not vacuous: before the scrubbing exporter, the instrumentation did
    # record identifiers (query strings, the request headers it was asked to
    # capture), and the same search finds them there.
    raw_hits = find_leaks(haystack_spans(data["raw_spans"], "raw span"))
    assert {"mrn", "patient name", "account number"} <= {h.needle for h in raw_hits}


@pytest.mark.db
def test_no_identifier_in_logs_traces_metrics_error_bodies_headers_or_cli_output(captured: Captured) -> None:
    data = captured.data
    sources = {
        "spans": list(haystack_spans(data["spans"])),
        "metrics": list(haystack_metrics(data["metrics"])),
        "logs": list(haystack_logs(data["logs"])),
        "HTTP responses": list(haystack_exchanges(data["exchanges"])),
        "SDK errors": list(haystack_texts(data["sdk_errors"])),
        "command line": list(haystack_texts(captured.searched_output)),
    }
    hits: list[Hit] = [hit for haystack in sources.values() for hit in find_leaks(haystack)]
    bodies = sum(1 for x in data["exchanges"] if x["body"])
    errors = sum(1 for x in data["exchanges"] if x["status"] >= 400)
    print(
        f"\nsearched for {len(NEEDLES)} identifiers ({', '.join(NEEDLES.values())}):"
        f" {len(data['spans'])} spans, {len(metric_points(data['metrics']))} metric points,"
        f" {len(data['logs'])} log records ({data['harness_logs']} httpx request lines of the test's own left out),"
        f" {len(data['exchanges'])} responses ({errors} errors, {bodies} bodies),"
        f" {len(data['sdk_errors'])} SDK errors, {len(captured.searched_output)} process output streams"
        f" ({sum(map(len, captured.searched_output.values()))} characters);"
        f" {sum(len(h) for h in sources.values())} strings; flow {captured.seconds:.1f}s; {len(hits)} hits"
    )
    assert not hits, f"{len(hits)} identifier(s) found:\n" + "\n".join(map(str, hits[:100]))


def test_the_search_finds_a_planted_leak() -> None:
    """The searcher, on captures made the same way, finds each kind of leak."""
    logs = LogCapture()
    planted = logging.getLogger("tests.phi_selftest")
    with capture_all_logging(logs):
        planted.debug("clean line for seq %d", 7)
        planted.info("looked up %s", MRN)
        planted.warning("lookup", extra={"patient_ref": f"{MRN_SYSTEM}|{EMPI}"})
        try:
            raise ValueError(f"DETAIL: Key (value)=({NAME.upper()}) already exists")
        except ValueError:
            planted.exception("append failed")
    span = ReadableSpan(
        name="GET /v1/events/{event_id}",
        attributes={"http.target": "/v1/events/x?acct=" + quote(ACCT, safe="")},
        events=[Event("exception", {"exception.type": "KeyError"})],
        status=Status(StatusCode.ERROR, f"no such patient {ACCT}"),
    )
    exchanges: list[dict[str, Any]] = []

    def echo(request: httpx.Request) -> httpx.Response:  # a service that echoes what it was sent
        where = ["query", request.url.params["name"], request.url.params["acct"]]
        body = json.dumps({"detail": "not found", "errors": [{"loc": where}]})  # ASCII-escaped
        return httpx.Response(404, headers={"location": str(request.url)}, content=body.encode())

    transport = RecordingTransport(exchanges, "selftest", "auditor", inner=httpx.MockTransport(echo))
    with httpx.Client(transport=transport, base_url="http://selftest") as client:
        client.get("/x", params={"mrn": UNKNOWN_MRN, "name": NAME, "acct": ACCT})
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])  # this test's own, not the global one
    provider.get_meter("selftest").create_counter("lookups").add(1, {"patient": EMPI})
    collected = reader.get_metrics_data()
    assert collected is not None
    metrics = json.loads(collected.to_json(indent=None))
    provider.shutdown()
    hits = find_leaks(
        [
            *haystack_logs(logs.records),
            *haystack_spans([span_json(span)]),
            *haystack_exchanges(exchanges),
            *haystack_metrics(metrics),
        ]
    )
    where = {(h.needle, h.where.split(" ")[0].split(".")[0]) for h in hits}
    assert ("mrn", "log[1]") in where  # the message
    assert ("empi", "log[2]") in where  # an extra field
    assert ("patient name", "log[3]") in where  # exception text, in capitals
    assert ("account number", "span[0]") in where  # percent-encoded in an attribute; and the status description
    assert ("unknown mrn", "response[0]") in where  # a header
    assert ("patient name", "response[0]") in where  # in a body
    assert any(h.needle == "account number" and "raw body" in h.where for h in hits)  # JSON-escaped
    assert ("empi", "metrics") in where
    assert not [h for h in hits if h.where.startswith("log[0]")], "a clean record is not a hit"
    assert len(logs.records) == 4
