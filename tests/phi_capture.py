"""Capture everything a service process emits, and search it for patient identifiers.

Used by ``tests/test_no_phi_leaks.py`` (DESIGN.md invariant 7). Two halves:

* Capture: ``LogCapture`` (a logging handler that keeps every field of every
  record: message, arguments, extra fields, exception text),
  ``RecordingTransport`` (an httpx transport that keeps every response's
  status, headers and body, for the SDK's client and the test's own), and
  ``span_json`` / the metric reader's ``to_json`` for OpenTelemetry.
* Search: ``haystack_*`` turn each captured thing into ``(where, text)``
  pairs (every string, keys included, walked recursively), and
  ``find_leaks`` looks for every needle in every form it could take there:
  as is, percent-encoded (``quote``, ``quote_plus``), JSON-escaped, in any
  letter case, and in the percent-decoded text too.

The flow itself runs in a child process, ``python -m tests.phi_capture SPEC
OUT``: OpenTelemetry's tracer and meter providers can be set once per
process, and ``tests/test_telemetry.py`` installs its own in-memory exporters
in the pytest process (and shuts them down after its module), so a second
installation there would break one module or the other. The child reuses the
same pieces: ``setup_telemetry`` with in-memory exporters, ``create_app`` on
the runtime role's DSN, uvicorn in a thread, ``make_token`` from conftest.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import httpx

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"

# -- The synthetic patient ----------------------------------------------------
# Distinctive values that occur nowhere else (no corpus file, no system id,
# no setting contains them), so any hit is this flow's patient.

MRN = "MRN-LEAK-000123"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.7777.1"
EMPI = "EMPI-LEAK-456789"
EMPI_SYSTEM = "urn:oid:2.16.840.1.113883.3.7777.9"
# Needs percent-encoding in a URL (space, slash, hash, non-ASCII) and escaping in JSON.
ACCT = "ACCT LEAK/777#Ä"
ACCT_SYSTEM = "urn:oid:2.16.840.1.113883.3.7777.2"
FHIR_BASE = "https://fhir.example.org/r4"
FHIR_ID = "FHIR-LEAK-pat-0042"
FHIR_SYSTEM = f"{FHIR_BASE}/Patient"
UNKNOWN_MRN = "MRN-LEAK-999999"  # asked about, never stored
NAME = "Testpatient Leakcheck"
FAMILY = "Leakcheck"

# label -> value: every identifier value (and the name) the flow uses.
NEEDLES: dict[str, str] = {
    "mrn": MRN,
    "empi": EMPI,
    "account number": ACCT,
    "fhir logical id": FHIR_ID,
    "unknown mrn": UNKNOWN_MRN,
    "patient name": NAME,
    "family name": FAMILY,
}
PHI_QUERY: dict[str, str] = {
    "mrn": MRN,
    "patient": f"{MRN_SYSTEM}|{MRN}",
    "patient.identifier": f"{ACCT_SYSTEM}|{ACCT}",
    "empi": EMPI,
    "_id": FHIR_ID,
    "name": NAME,
}
PHI_HEADERS = {
    "X-Patient-Mrn": MRN,
    "User-Agent": f"chart-viewer/1.0 (patient {MRN})",
    "Referer": f"https://portal.example.org/chart?mrn={MRN}&name={quote_plus(NAME)}",
}
# Headers the child asks the HTTP instrumentation to record on spans (what an
# operator may configure): the scrubbing exporter must drop them.
CAPTURED_REQUEST_HEADERS = "x-patient-mrn,referer,user-agent"


# -- Search -------------------------------------------------------------------


def forms(value: str) -> set[str]:
    """The ways ``value`` could be written in a log line, URL or JSON text."""
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],  # ASCII-escaped
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


@dataclass(frozen=True)
class Hit:
    needle: str  # the label, e.g. "mrn"
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.needle} in {self.where}: ...{self.excerpt}..."


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value, keys included, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.<key>", str(key)
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from walk(item, f"{path}[{i}]")
    elif value is not None and not isinstance(value, bool | int | float):
        yield path, repr(value)


def find_leaks(haystack: Iterable[tuple[str, str]], needles: dict[str, str] = NEEDLES) -> list[Hit]:
    """Every (needle, place) where a needle occurs, in any of its ``forms``,
    case-insensitively, in a text or in its percent-decoded form."""
    patterns = [(label, f.casefold()) for label, value in needles.items() for f in forms(value)]
    hits: list[Hit] = []
    for where, text in haystack:
        variants = {text.casefold(), unquote_plus(text).casefold()}
        seen: set[str] = set()
        for label, pattern in patterns:
            if label in seen:
                continue
            for variant in variants:
                at = variant.find(pattern)
                if at >= 0:
                    seen.add(label)
                    hits.append(Hit(label, where, variant[max(0, at - 60) : at + len(pattern) + 60]))
                    break
    return hits


# -- Capture: logs ------------------------------------------------------------

_STANDARD_RECORD_FIELDS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", None, None))) | {
    "message",
    "asctime",
}
_HARNESS = threading.local()


@contextmanager
def harness_client() -> Iterator[None]:
    """Mark this thread's ``httpx`` log records (one per request, with its
    URL) as the test harness's own: its requests carry identifiers in their
    URLs on purpose. The service (another thread) and the SDK's sender thread
    are never marked; httpcore's records (no URLs) are searched."""
    _HARNESS.active = True
    try:
        yield
    finally:
        _HARNESS.active = False


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def exception_text(exc_info: Any) -> str:
    """Each exception of the chain, type and message, with its frames (file,
    line, function; not source lines, which are code, not data)."""
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append("".join(traceback.format_exception_only(type(exc), exc)))
        parts.append(repr(exc.args))
        parts.extend(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__))
        notes = getattr(exc, "__notes__", None)
        if notes:
            parts.extend(map(str, notes))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Everything a formatter or handler could take from ``record``."""
    out: dict[str, Any] = {
        "logger": record.name,
        "level": record.levelname,
        "thread": record.threadName,
        "msg": _text(record.msg),
    }
    try:
        out["message"] = record.getMessage()
    except Exception as exc:  # a bad format string is still a record to search
        out["message"] = f"<getMessage failed: {type(exc).__name__}>"
    args = record.args
    if isinstance(args, dict):
        out["args"] = {str(k): _text(v) for k, v in args.items()}
    elif args:
        out["args"] = [_text(a) for a in args]
    if record.exc_info and record.exc_info[1] is not None:
        out["exception"] = exception_text(record.exc_info)
    if record.exc_text:
        out["exc_text"] = record.exc_text
    if record.stack_info:
        out["stack_info"] = record.stack_info
    extra = {k: _text(v) for k, v in vars(record).items() if k not in _STANDARD_RECORD_FIELDS}
    if extra:
        out["extra"] = extra
    return out


class LogCapture(logging.Handler):
    """Keeps every record it handles, as ``record_fields`` at emit time."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[dict[str, Any]] = []
        self.harness: list[dict[str, Any]] = []  # the test client's own request lines

    def emit(self, record: logging.LogRecord) -> None:
        fields = record_fields(record)
        mine = getattr(_HARNESS, "active", False) and record.name == "httpx"
        (self.harness if mine else self.records).append(fields)


@contextmanager
def capture_all_logging(handler: LogCapture) -> Iterator[Callable[[], None]]:
    """Every logger at DEBUG, every record to ``handler`` exactly once: on the
    root logger, and on each logger that does not propagate (uvicorn's).
    Yields a function that does it again for loggers created since."""
    manager = logging.Logger.manager
    saved_disable = manager.disable
    saved: dict[int, tuple[logging.Logger, int, bool]] = {}
    attached: list[logging.Logger] = []

    def refresh() -> None:
        logging.disable(logging.NOTSET)
        root = logging.getLogger()
        loggers = [root] + [lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
        for lg in loggers:
            saved.setdefault(id(lg), (lg, lg.level, lg.disabled))
            lg.setLevel(logging.DEBUG)
            lg.disabled = False
            if (lg is root or not lg.propagate) and handler not in lg.handlers:
                lg.addHandler(handler)
                attached.append(lg)

    refresh()
    try:
        yield refresh
    finally:
        for lg in attached:
            lg.removeHandler(handler)
        for lg, level, disabled in saved.values():
            lg.setLevel(level)
            lg.disabled = disabled
        logging.disable(saved_disable)


# -- Capture: HTTP ------------------------------------------------------------


def by_design_fields(method: str, path: str, status: int, role: str) -> list[str]:
    """Top-level fields of a success body that carry PHI by design: what a
    privacy officer asked for. Everything else in every body is searched."""
    if status != 200 or role != "privacy_officer":
        return []
    if method == "POST" and path == "/v1/reports/patient-access":
        return ["patient", "events"]
    if method == "POST" and path == "/v1/reports/disclosures":
        return ["patient"]
    if method == "GET" and path.startswith("/v1/events/"):
        return ["patient_identifiers"]
    if method == "GET" and path == "/v1/reviews/break-glass":
        return ["items"]
    return []


class RecordingTransport(httpx.BaseTransport):
    """Sends through a real ``httpx.HTTPTransport`` and keeps each response."""

    def __init__(
        self, sink: list[dict[str, Any]], client: str, role: str, inner: httpx.BaseTransport | None = None
    ) -> None:
        self._inner = inner or httpx.HTTPTransport()
        self.sink = sink
        self.client = client
        self.role = role

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        path = request.url.path
        self.sink.append(
            {
                "client": self.client,
                "role": self.role,
                "request": f"{request.method} {path}",  # what was sent: never searched
                "status": response.status_code,
                "headers": [[k, v] for k, v in response.headers.multi_items()],
                "body": body.decode("utf-8", "replace"),
                "by_design": by_design_fields(request.method, path, response.status_code, self.role),
            }
        )
        return response

    def close(self) -> None:
        self._inner.close()


# -- Capture: spans and metrics -----------------------------------------------


def span_json(span: Any) -> dict[str, Any]:
    """A finished span as JSON: name, context, kind, status (with any
    description), attributes, events, links, resource, and its scope."""
    data: dict[str, Any] = json.loads(span.to_json(indent=None))
    scope = span.instrumentation_scope
    if scope is not None:
        data["instrumentation_scope"] = {
            "name": scope.name,
            "version": scope.version,
            "schema_url": scope.schema_url,
            "attributes": dict(scope.attributes or {}),
        }
    return data


def metric_points(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (metric["name"], point)
        for resource in metrics.get("resource_metrics", [])
        for scope in resource.get("scope_metrics", [])
        for metric in scope.get("metrics", [])
        for point in metric.get("data", {}).get("data_points", [])
    ]


# -- What gets searched -------------------------------------------------------


def haystack_spans(spans: list[dict[str, Any]], kind: str = "span") -> Iterator[tuple[str, str]]:
    for i, span in enumerate(spans):
        yield from walk(span, f"{kind}[{i}] {span.get('name')!r}")


def haystack_metrics(metrics: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield from walk(metrics, "metrics")


def haystack_logs(records: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for i, record in enumerate(records):
        yield from walk(record, f"log[{i}] {record.get('logger')} {record.get('level')}")


def haystack_exchanges(exchanges: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """Every response header, and every body but the fields a privacy officer
    asked for (``by_design``); JSON bodies are searched parsed and raw."""
    for i, ex in enumerate(exchanges):
        where = f"response[{i}] {ex['client']} {ex['request']} -> {ex['status']}"
        for name, value in ex["headers"]:
            yield f"{where} header", f"{name}: {value}"
        body = ex["body"]
        try:
            parsed = json.loads(body)
        except ValueError:
            yield f"{where} body", body
            continue
        if isinstance(parsed, dict) and ex["by_design"]:
            parsed = {k: v for k, v in parsed.items() if k not in ex["by_design"]}
            yield from walk(parsed, f"{where} body")
        else:
            yield from walk(parsed, f"{where} body")
            yield f"{where} raw body", body


def haystack_texts(texts: dict[str, str]) -> Iterator[tuple[str, str]]:
    for where, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            yield f"{where} line {n}", line


# -- The flow (child process) -------------------------------------------------


def hl7_message() -> str:
    """The Epic ADT^A01 of the corpus, with this module's patient in PID-3 and PID-5."""
    text = (CORPUS / "hl7v2" / "epic_adt_a01_v251.hl7").read_text()
    pid3 = "E1000001^^^EPI^MR~100234^^^MAINHOSP^MRN"
    assert pid3 in text and "TESTPATIENT^ALPHA^Q" in text
    mrn_oid, empi_oid = MRN_SYSTEM.removeprefix("urn:oid:"), EMPI_SYSTEM.removeprefix("urn:oid:")
    text = text.replace(pid3, f"{MRN}^^^MAINHOSP&{mrn_oid}&ISO^MR~{EMPI}^^^EMPI&{empi_oid}&ISO^PI")
    return text.replace("TESTPATIENT^ALPHA^Q", f"{FAMILY}^{NAME.split()[0]}^Q")


def fhir_bundle() -> dict[str, Any]:
    """A searchset of the corpus's Patient and Observation, the Patient being this module's."""
    patient = json.loads((CORPUS / "fhir" / "patient-multi-identifier.json").read_text())
    patient["id"] = FHIR_ID
    patient["identifier"] = [
        {"system": MRN_SYSTEM, "value": MRN},
        {"system": ACCT_SYSTEM, "value": ACCT},
    ]
    patient["name"] = [{"use": "official", "family": FAMILY, "given": [NAME.split()[0]]}]
    patient["text"]["div"] = f'<div xmlns="http://www.w3.org/1999/xhtml">{NAME}</div>'
    observation = json.loads((CORPUS / "fhir" / "observation-vitals.json").read_text())
    observation["subject"] = {"reference": f"Patient/{FHIR_ID}", "display": NAME}
    return {
        "resourceType": "Bundle",
        "id": "search-0001",
        "type": "searchset",
        "entry": [
            {"fullUrl": f"{FHIR_BASE}/Patient/{FHIR_ID}", "resource": patient},
            {"fullUrl": f"{FHIR_BASE}/Observation/{observation['id']}", "resource": observation},
        ],
    }


HL7_SOURCE = "EPIC@MAINHOSP"
FHIR_SOURCE = "fhir-gateway"


@dataclass
class Flow:
    """The child's state: the service, tokens, clients, what was captured."""

    url: str
    tokens: dict[str, str]
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    sdk_errors: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, role: str) -> httpx.Client:
        """The harness's own client for ``role`` ("none": no token)."""
        if role not in self._clients:
            headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}
            self._clients[role] = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=30,
                transport=RecordingTransport(self.exchanges, f"harness:{role}", role),
            )
        return self._clients[role]

    def call(
        self, role: str, method: str, url: str, expect: int | set[int] | None = None, note: str = "", **kw: Any
    ) -> httpx.Response:
        """One request of the harness's own; ``expect``: the status(es) it must get."""
        with harness_client():
            response = self.client(role).request(method, url, **kw)
        statuses = self.facts.setdefault("statuses", {})
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        if expect is not None:
            wanted = {expect} if isinstance(expect, int) else expect
            assert response.status_code in wanted, (
                f"{note} {method} {url}: {response.status_code} {response.text[:300]}"
            )
        return response

    def sdk(self, role: str, **options: Any) -> Any:
        from auditsvc_sdk import AuditClient

        transport = RecordingTransport(self.exchanges, f"sdk:{role}", role)
        return AuditClient(self.url, self.tokens[role], transport=transport, **options)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def run_flow(flow: Flow, app: Any) -> None:
    """Everything a patient's identifiers can go through, in and out."""
    from auditsvc_sdk import EventRejected, InvalidEvent, events_from_fhir, events_from_hl7v2

    # 1. Events built by the SDK helpers, delivered by AuditClient in the background.
    actor = {"id": "mirth/ADT-IN", "type": "system"}
    hl7_events = [e for _ in range(3) for e in events_from_hl7v2(hl7_message(), actor=actor)]
    fhir_events = [
        e
        for action in ("R", "U")
        for e in events_from_fhir(
            fhir_bundle(),
            source=FHIR_SOURCE,
            destination="patient-portal",
            actor={"id": "portal-svc", "type": "system"},
            action=action,
            fhir_base=FHIR_BASE,
        )
    ]
    assert len(hl7_events) == 3 and len(fhir_events) == 2
    hl7_ids = {(i.system, i.value) for i in hl7_events[0].patient.identifiers}
    fhir_ids = {(i.system, i.value) for i in fhir_events[0].patient.identifiers}
    assert {(MRN_SYSTEM, MRN), (EMPI_SYSTEM, EMPI)} <= hl7_ids, "the HL7 helper read PID-3"
    assert {(MRN_SYSTEM, MRN), (ACCT_SYSTEM, ACCT), (FHIR_SYSTEM, FHIR_ID)} <= fhir_ids, "the FHIR helper read them"
    events = hl7_events + fhir_events
    sdk = flow.sdk("emitter", flush_interval=0.05)
    try:
        for event in events:
            sdk.record(event)
        assert sdk.flush(timeout=20), "the SDK delivered the events"
        # 2. A resend: the same events again, in the background and directly.
        for event in events[:2]:
            sdk.record(event)
        assert sdk.flush(timeout=20)
        answer = sdk.record_batch(events)
        assert {r["status"] for r in answer["results"]} == {"duplicate"}
        try:  # refused locally, before any request: the SDK's own error text
            sdk.record(
                {**events[0].to_json(), "patient": {"identifiers": [{"system": MRN_SYSTEM, "value": MRN + "\0"}]}}
            )
        except InvalidEvent as exc:
            flow.sdk_errors["InvalidEvent (NUL in identifier)"] = f"{exc}\n{exc!r}"
        else:
            raise AssertionError("the SDK accepted a NUL in an identifier")
        counters = sdk.counters()
        flow.facts["sdk_counters"] = counters.as_dict()
    finally:
        assert sdk.close(timeout=10)
    flow.facts["event_ids"] = {"hl7": str(hl7_events[0].event_id), "fhir": str(fhir_events[0].event_id)}
    flow.facts["sdk_events"] = len(events)
    failing: dict[str, Callable[[], object]] = {
        "HL7v2Error (no MSH)": lambda: events_from_hl7v2(f"PID|1||{MRN}^^^H^MR||{FAMILY}^X", actor=actor),
        # A patient named without a usable identifier is recorded (unlinked), not refused: the PHI is
        # in a segment other than PID, and the message names no patient.
        "HL7v2Error (no patient)": lambda: events_from_hl7v2(
            hl7_message().replace("\nPID|1|", f"\nNK1|1|{FAMILY}^X|SPO|"), actor=actor
        ),
        "FHIRError (no resourceType)": lambda: events_from_fhir(
            {"id": FHIR_ID, "identifier": [{"system": MRN_SYSTEM, "value": {"v": MRN}}]},
            source=FHIR_SOURCE,
            destination="x",
            actor=actor,
        ),
        "FHIRError (not JSON)": lambda: events_from_fhir(
            f'{{"resourceType": "Patient", "id": "{MRN}"', source="s", destination="d", actor=actor
        ),
    }
    for name, bad in failing.items():
        try:
            bad()
        except ValueError as exc:
            flow.sdk_errors[name] = f"{exc}\n{exc!r}"
        else:
            raise AssertionError(f"{name}: no error")

    # 3. Invalid batches with the identifiers inside the invalid fields.
    base: dict[str, Any] = events[0].to_json()

    def ev(**over: Any) -> dict[str, Any]:
        event = copy.deepcopy(base)
        event["event_id"] = str(uuid.uuid4())
        event.update(over)
        return event

    def ident(value: Any, system: Any = MRN_SYSTEM, **more: Any) -> dict[str, Any]:
        return {"identifiers": [{"system": system, "value": value, **more}]}

    invalid = {
        "identifier value too long": _batch(ev(patient=ident(f"{MRN}-{'9' * 200}"))),
        "NUL in identifier value": _batch(ev(patient=ident(f"{MRN}\0{EMPI}"))),
        "NUL in identifier system": _batch(ev(patient=ident(MRN, system=f"urn:oid:1.2\0{EMPI}"))),
        "identifier value a list": _batch(ev(patient=ident([MRN, EMPI]))),
        "identifier value an object": _batch(ev(patient=ident({"mrn": MRN}))),
        "identifier value empty, name as system": _batch(ev(patient=ident("  ", system=NAME))),
        "identifiers a string": _batch(ev(patient={"identifiers": MRN})),
        "patient a string": _batch(ev(patient=f"{MRN_SYSTEM}|{MRN}")),
        "21 identifiers": _batch(
            ev(patient={"identifiers": [{"system": MRN_SYSTEM, "value": f"{MRN}-{i}"} for i in range(21)]})
        ),
        "unknown identifier field": _batch(ev(patient=ident(MRN, display=NAME))),
        "unknown patient field": _batch(ev(patient={**ident(MRN), "mrn": MRN, "name": NAME})),
        "unknown event field": _batch(ev(mrn=MRN, patient_name=NAME)),
        "unknown batch field": {**_batch(ev()), "patient": MRN},
        "events a string": {"events": MRN},
        "event an identifier": {"events": [MRN, {"value": EMPI}]},
        "event_id an MRN": _batch(ev(event_id=MRN)),
        "occurred_at an MRN": _batch(ev(occurred_at=MRN)),
        "action an MRN": _batch(ev(action=MRN)),
        "outcome an MRN": _batch(ev(outcome=MRN)),
        "event_type an account number": _batch(ev(event_type=ACCT)),
        "purpose_of_use a name": _batch(ev(purpose_of_use=NAME)),
        "source system an MRN with a space": _batch(ev(source={"system_id": f"{MRN} {EMPI}"})),
        "data_elements an MRN": _batch(ev(data_elements=MRN)),
        "data element too long": _batch(ev(data_elements=[NAME * 10])),
        "message_id too long": _batch(ev(message_id=MRN * 20)),
        "actor name too long": _batch(ev(actor={"id": "u1", "type": "user", "name": NAME * 20})),
        "actor type an MRN": _batch(ev(actor={"id": MRN, "type": MRN})),
        "trace_id an MRN": _batch(ev(trace_id=MRN)),
        "attribute nested": _batch(ev(attributes={"mrn": {"value": MRN}})),
        "attribute a float next to an MRN": _batch(ev(attributes={"mrn": MRN, "score": 0.5})),
        "attribute too long": _batch(ev(attributes={"note": MRN * 100})),
        "attribute with NUL": _batch(ev(attributes={"mrn": f"{MRN}\0"})),
        "1001 events": _batch(*(ev(patient=ident(f"{MRN}-{i}")) for i in range(1001))),
    }
    for name, body in invalid.items():
        response = flow.call("emitter", "POST", "/v1/events", 422, json=body, note=name)
        assert response.json().get("detail"), name
    json_header = {"content-type": "application/json"}
    raw_bodies: dict[str, tuple[bytes, int | set[int]]] = {
        "bare identifier": (b'{"events": [' + MRN.encode() + b"]}", 400),
        "truncated inside a value": (b'{"events": [{"patient": {"identifiers": [{"value": "' + MRN.encode(), 400),
        "missing comma": (('{"events": [{"mrn": "' + MRN + '" "name": "' + NAME + '"}]}').encode(), 400),
        "invalid UTF-8 after an MRN": (b'{"events": [{"mrn": "' + MRN.encode() + b'\xff\xfe"}]}', 400),
        "lone surrogate before an MRN": (b'{"events": [{"mrn": "\\ud800' + MRN.encode() + b'"}]}', {400, 422}),
        "HL7 instead of JSON": (f"PID|1||{MRN}^^^HOSP^MR||{FAMILY}^{NAME.split()[0]}".encode(), 400),
        "over-deep": (
            b'{"events": [{"attributes": {"a": ' + b"[" * 40 + json.dumps(MRN).encode() + b"]" * 40 + b"}}]}",
            422,
        ),
        "array too long": (json.dumps(_batch(ev(data_elements=[MRN] * 1001))).encode(), 422),
        "object too large": (
            json.dumps(_batch(ev(attributes={f"k{i}": f"{MRN}-{i}" for i in range(70)}))).encode(),
            422,
        ),
        "oversized": (json.dumps(_batch(ev(attributes={"pad": MRN * 300_000}))).encode(), 413),
    }
    for name, (content, status) in raw_bodies.items():
        flow.call("emitter", "POST", "/v1/events", status, content=content, headers=json_header, note=name)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while it streams
        yield b'{"events": [{"mrn": "'
        for _ in range(70):
            yield (MRN * 4096).encode()
        yield b'"}]}'

    flow.call("emitter", "POST", "/v1/events", 413, content=chunked(), headers=json_header)

    # 4. Who may send: not bound to the system, no token, bad tokens, wrong role.
    good = _batch(ev())
    flow.call("other_emitter", "POST", "/v1/events", 403, json=good)
    other = flow.sdk("other_emitter")
    try:
        other.record_batch(hl7_events)
    except EventRejected as exc:
        flow.sdk_errors["EventRejected (403)"] = f"{exc}\n{exc!r}"
    else:
        raise AssertionError("an emitter sent for a system it is not bound to")
    finally:
        other.close()
    flow.call("none", "POST", "/v1/events", 401, json=good)
    bad_auth = [
        f"Bearer {MRN}",
        f"Bearer asv_{MRN}_{NAME}",
        "Bearer asv_0123456789abcdef_" + base64.urlsafe_b64encode(MRN.encode() * 3).decode()[:43],
        "Bearer "
        + ".".join(
            base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")
            for p in ({"alg": "none"}, {"sub": MRN, "name": NAME})
        )
        + ".",
        "Basic " + base64.b64encode(f"{MRN}:{NAME}".encode()).decode(),
        f"{MRN} {EMPI}",
    ]
    for value in bad_auth:
        flow.call("none", "POST", "/v1/events", 401, json=good, headers={"Authorization": value})
        flow.call("none", "GET", f"/v1/events/{uuid.uuid4()}", 401, params=PHI_QUERY, headers={"Authorization": value})
    flow.call("auditor", "POST", "/v1/events", 403, json=good)
    flow.call(
        "emitter", "POST", "/v1/reports/patient-access", 403, json={"identifier": {"system": MRN_SYSTEM, "value": MRN}}
    )

    # 5. Reports by each identifier, found and not; every page of one; via the SDK too.
    report_counts: dict[str, int] = {}
    for label, (system, value) in {
        "mrn": (MRN_SYSTEM, MRN),
        "empi": (EMPI_SYSTEM, EMPI),
        "account number": (ACCT_SYSTEM, ACCT),
        "fhir logical id": (FHIR_SYSTEM, FHIR_ID),
        "unknown mrn": (MRN_SYSTEM, UNKNOWN_MRN),
    }.items():
        response = flow.call(
            "privacy_officer",
            "POST",
            "/v1/reports/patient-access",
            200,
            json={"identifier": {"system": system, "value": value}},
        )
        report = response.json()
        report_counts[label] = len(report["events"])
        flow.facts.setdefault("linked_identifiers", {})[label] = len(report["patient"]["identifiers"])
    flow.facts["report_events"] = report_counts
    pages, seen_events, cursor = 0, 0, None
    while True:
        query: dict[str, Any] = {"identifier": {"system": EMPI_SYSTEM, "value": EMPI}, "limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = flow.call("privacy_officer", "POST", "/v1/reports/patient-access", 200, json=query).json()
        pages += 1
        seen_events += len(page["events"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    flow.facts["pages"], flow.facts["paged_events"] = pages, seen_events
    dated = {"identifier": {"system": MRN_SYSTEM, "value": MRN}, "from": "2024-03-01", "to": "2099-12-31T23:59:59Z"}
    flow.call("privacy_officer", "POST", "/v1/reports/patient-access", 200, json=dated)
    officer_sdk = flow.sdk("privacy_officer")
    try:
        flow.facts["sdk_report_events"] = len(
            officer_sdk.patient_access_report(FHIR_SYSTEM, FHIR_ID, limit=1)["events"]
        )
        try:
            officer_sdk.patient_access_report(MRN_SYSTEM, MRN * 10)
        except EventRejected as exc:
            flow.sdk_errors["EventRejected (report, value too long)"] = f"{exc}\n{exc!r}"
    finally:
        officer_sdk.close()
    fake_cursor = base64.urlsafe_b64encode(json.dumps({"t": MRN, "s": 0, "m": 1}).encode()).decode()
    bad_reports: list[tuple[Any, int]] = [
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN * 10}}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": f"{MRN}\0"}}, 422),
        ({"identifier": {"system": f"{MRN_SYSTEM}\0{EMPI}", "value": MRN}}, 422),
        ({"identifier": {"value": MRN}}, 422),
        ({"identifier": f"{MRN_SYSTEM}|{MRN}"}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": [MRN]}}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN, "name": NAME}}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "mrn": EMPI, "name": NAME}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "from": MRN}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "to": NAME}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "from": "2030-01-01", "to": "2020-01-01"}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "limit": MRN}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "cursor": MRN}, 422),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "cursor": fake_cursor}, 422),
    ]
    for body, status in bad_reports:
        flow.call("privacy_officer", "POST", "/v1/reports/patient-access", status, json=body)
    for raw, status in [
        (b'{"identifier": {"system": "x", "value": ' + MRN.encode() + b"}}", 400),
        (b'{"identifier": {"value": "' + MRN.encode() + b'\xff"}}', 400),
        (b'{"identifier": ' + b"[" * 40 + json.dumps(MRN).encode() + b"]" * 40 + b"}", 422),
        (json.dumps({"identifier": {"system": MRN_SYSTEM, "value": MRN}, "pad": MRN * 10_000}).encode(), 413),
    ]:
        flow.call("privacy_officer", "POST", "/v1/reports/patient-access", status, content=raw, headers=json_header)
    # The accounting of disclosures, and suspensions naming the patient, good and bad.
    patient = {"system": MRN_SYSTEM, "value": MRN}
    flow.call("privacy_officer", "POST", "/v1/reports/disclosures", 200, json={"identifier": patient})
    suspension = {"recipient_system_id": "state-oig", "ends": "2099-01-01", "reference": "Letter 7"}
    flow.call("privacy_officer", "POST", "/v1/disclosure-suspensions", 201, json={**suspension, "identifier": patient})
    for body, path in [
        ({"identifier": patient, "requested_at": MRN}, "/v1/reports/disclosures"),
        ({"identifier": {"system": MRN_SYSTEM, "value": MRN * 10}}, "/v1/reports/disclosures"),
        ({"identifier": patient, "name": NAME}, "/v1/reports/disclosures"),
        ({**suspension, "ends": MRN, "identifier": patient}, "/v1/disclosure-suspensions"),
        ({**suspension, "recipient_system_id": f"{MRN} {NAME}"}, "/v1/disclosure-suspensions"),
        ({**suspension, "identifier": {"system": MRN_SYSTEM, "value": f"{MRN}\0"}}, "/v1/disclosure-suspensions"),
    ]:
        flow.call("privacy_officer", "POST", path, 422, json=body)
    # The break-glass queue (the patient in its items, by design) and a review, good and bad.
    glass = ev(purpose_of_use="ETREAT")
    flow.call("emitter", "POST", "/v1/events", 200, json=_batch(glass))
    flow.call("privacy_officer", "GET", "/v1/reviews/break-glass", 200, params={"status": "all"})
    review = {"event_id": glass["event_id"], "verdict": "investigate", "notes": "asked the ED for the form"}
    flow.call("privacy_officer", "POST", "/v1/reviews", 201, json=review)
    for body in [
        {**review, "notes": f"{NAME} {MRN} " * 60},
        {**review, "verdict": MRN},
        {**review, "event_id": MRN},
        {**review, "patient": NAME},
    ]:
        flow.call("privacy_officer", "POST", "/v1/reviews", 422, json=body)
    flow.call("privacy_officer", "GET", "/v1/reviews/break-glass", 422, params={"cursor": MRN, "from": EMPI})

    # 6. Checkpoint signing, then event reads (with identifiers in the query string).
    note = flow.call("admin", "POST", "/v1/checkpoints", 200, params={"mrn": MRN}).text
    flow.facts["checkpoint_tree_size"] = int(note.splitlines()[1])
    for event_id in flow.facts["event_ids"].values():
        for role in ("auditor", "privacy_officer"):
            flow.call(role, "GET", f"/v1/events/{event_id}", 200)
            flow.call(role, "GET", f"/v1/events/{event_id}", 200, params=PHI_QUERY, headers=PHI_HEADERS)
    flow.call("privacy_officer", "GET", f"/v1/events/{uuid.uuid4()}", 404, params=PHI_QUERY)
    flow.call("emitter", "GET", f"/v1/events/{flow.facts['event_ids']['hl7']}", 403, params=PHI_QUERY)

    # 7. Every GET endpoint the app has, with identifiers in the query string.
    size = flow.facts["checkpoint_tree_size"]
    fill = {"event_id": flow.facts["event_ids"]["hl7"], "tree_size": "1"}
    extra = {"/v1/proofs/inclusion": {"seq": 0, "tree_size": 1}, "/v1/proofs/consistency": {"first": 1, "second": size}}
    schema = app.openapi()["paths"]
    gets = sorted(
        {path for path, operations in schema.items() if "get" in operations}
        | {r.path for r in app.routes if "GET" in (getattr(r, "methods", None) or ())}
        | {"/healthz", "/readyz"}
    )
    flow.facts["get_routes"] = gets
    for template in gets:
        path = template.format(**{k: fill.get(k, "1") for k in _params(template)})
        params = {**extra.get(template, {}), **PHI_QUERY}
        flow.call("auditor", "GET", path, None, params=params, headers=PHI_HEADERS)
        flow.call("none", "GET", path, None, params=params)
        for value in (MRN, ACCT, NAME) if _params(template) else ():  # an identifier where a parameter goes
            phi_path = template.format(**dict.fromkeys(_params(template), quote(value, safe="")))
            flow.call("auditor", "GET", phi_path, {404, 422}, params=PHI_QUERY)
    odd_paths: list[tuple[str, int | set[int]]] = [
        (f"/v1/nope/{MRN}", 404),
        (f"/fhir/Patient/{FHIR_ID}", 404),
        (f"/v1/events/{quote(ACCT, safe='')}", {404, 422}),
        (f"/v1/events/{MRN}/{EMPI}", 404),
        ("/v1/checkpoints/latest/", {404, 307}),  # a redirect's Location would repeat the query
        ("/v1/events/", {404, 307}),
        ("/v1/events", 405),
        (f"/{quote(NAME)}", 404),
    ]
    for path, status in odd_paths:
        flow.call("auditor", "GET", path, status, params=PHI_QUERY, headers=PHI_HEADERS, follow_redirects=False)
    flow.call("emitter", "POST", "/v1/events", 200, params=PHI_QUERY, json=_batch(ev()))
    flow.call(
        "privacy_officer",
        "POST",
        "/v1/reports/patient-access",
        200,
        params=PHI_QUERY,
        json={"identifier": {"system": EMPI_SYSTEM, "value": EMPI}},
    )
    flow.call("auditor", "OPTIONS", "/v1/events", None, params=PHI_QUERY)
    flow.call("auditor", "DELETE", f"/v1/events/{flow.facts['event_ids']['hl7']}", 405, params=PHI_QUERY)


def _params(template: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@contextmanager
def serve(settings: Any) -> Iterator[tuple[str, Any]]:
    """The real API on a loopback port as the runtime role (as conftest's
    ``running_service``), with uvicorn's loggers left to propagate at DEBUG."""
    from .conftest import running_service

    with running_service(settings, log_level="debug", log_config=None) as service:
        yield service.url, service.server.config.app


def main(out_path: str) -> None:
    """The child: set up capture, run the flow, write what was captured."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from auditsvc.domain.tokens import Role
    from auditsvc.settings import Settings
    from auditsvc.telemetry import setup_telemetry

    from .conftest import make_token

    logs = LogCapture()
    with capture_all_logging(logs) as refresh_logging:
        settings = Settings()  # AUDITSVC_* from the parent
        spans, raw, reader = InMemorySpanExporter(), InMemorySpanExporter(), InMemoryMetricReader()
        telemetry = setup_telemetry(settings, span_exporters=[spans], metric_readers=[reader])
        assert telemetry.tracing and telemetry.metrics and telemetry.tracer_provider is not None
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(raw))  # unscrubbed: the sanity check's
        tokens = {
            "emitter": make_token(settings, Role.EMITTER, [HL7_SOURCE, FHIR_SOURCE]),
            "other_emitter": make_token(settings, Role.EMITTER, ["lab-lis"]),
            "auditor": make_token(settings, Role.AUDITOR),
            "privacy_officer": make_token(settings, Role.PRIVACY_OFFICER),
            "admin": make_token(settings, Role.ADMIN),
        }
        with serve(settings) as (url, app):
            refresh_logging()  # the loggers the service created as it started
            flow = Flow(url, tokens)
            try:
                run_flow(flow, app)
            finally:
                flow.close()
            collected = reader.get_metrics_data()  # while the service runs: its gauges report
            assert collected is not None
            metrics = json.loads(collected.to_json(indent=None))
        telemetry.force_flush()
        telemetry.shutdown()
    flow.facts["raw_spans"] = len(raw.get_finished_spans())
    out = {
        "spans": [span_json(s) for s in spans.get_finished_spans()],
        "raw_spans": [span_json(s) for s in raw.get_finished_spans()],
        "metrics": metrics,
        "logs": logs.records,
        "harness_logs": len(logs.harness),
        "exchanges": flow.exchanges,
        "sdk_errors": flow.sdk_errors,
        "facts": flow.facts,
    }
    Path(out_path).write_text(json.dumps(out, ensure_ascii=False, default=repr))


if __name__ == "__main__":
    main(sys.argv[1])
