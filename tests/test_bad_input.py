"""Bad input through the real API: a clear 4xx naming the problem, nothing stored,
the chain intact, and never the offending value echoed back (it may be PHI)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query, run_cli

# Synthetic identifiers only. LEAK must never come back in an error body.
LEAK = "MRN-LEAKCHECK-9931"
LEAK_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.1"
GOOD_ID = ("urn:oid:2.16.840.1.113883.3.9999.2", "MRN-SYNTH-0042")
TABLES = ("events", "event_identifiers", "identifier_links", "patient_identifiers")
JSON = {"Content-Type": "application/json"}
MAX_BODY = 4 * 1024 * 1024


def counts(url: str) -> dict[str, int]:
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in TABLES)
    row = query(url, sql)[0]
    return {t: row[t] for t in TABLES}


def bad(**overrides: Any) -> dict[str, Any]:
    """An event for the leak-check patient; valid unless ``overrides`` break it."""
    return event([(LEAK_SYSTEM, LEAK)], **overrides)


def without(field: str) -> dict[str, Any]:
    body = bad()
    del body[field]
    return body


def batch(*events: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"events": list(events), **top}).encode()


def with_raw(raw: bytes, **overrides: Any) -> bytes:
    """A one-event batch whose message_id is replaced by ``raw`` bytes, verbatim."""
    return batch(bad(message_id="@@RAW@@", **overrides)).replace(b"@@RAW@@", raw)


def identifiers(*values: str) -> dict[str, Any]:
    return {"identifiers": [{"system": LEAK_SYSTEM, "value": v} for v in values]}


@dataclass
class Case:
    name: str
    body: bytes
    status: int
    detail: str  # a phrase the error body must contain (case-insensitive)
    loc: list[Any] | None = None  # an errors[].loc must start with this
    type: str | None = None  # ... and that error have this type


def loc(*path: Any) -> list[Any]:
    return ["events", 0, *path]


def missing(field: str) -> Case:
    return Case(f"missing {field}", batch(without(field)), 422, "invalid field", loc(field), "missing")


def one_bad_of_many() -> bytes:
    events = [bad() for _ in range(50)]
    events[37]["action"] = "X"
    return batch(*events)


def five_megabytes() -> bytes:
    body = batch(bad(attributes={"pad": "x" * 1000}))
    return body + b" " * (5 * 1000 * 1000 - len(body))


EVENT_CASES = [
    *(
        missing(f)
        for f in ("occurred_at", "action", "patient", "data_elements", "source", "destination", "actor", "event_type")
    ),
    Case("action X", batch(bad(action="X")), 422, "invalid field", loc("action"), "enum"),
    Case("outcome 3", batch(bad(outcome=3)), 422, "invalid field", loc("outcome"), "enum"),
    Case("outcome '3'", batch(bad(outcome="3")), 422, "invalid field", loc("outcome"), "enum"),
    Case(
        "occurred_at without offset",
        batch(bad(occurred_at="2026-11-24T09:30:00")),
        422,
        "invalid field",
        loc("occurred_at"),
    ),
    Case("occurred_at Unix seconds", batch(bad(occurred_at=1795530600)), 422, "invalid field", loc("occurred_at")),
    Case("occurred_at garbage", batch(bad(occurred_at="next tuesday")), 422, "invalid field", loc("occurred_at")),
    Case("occurred_at a list", batch(bad(occurred_at=[2026])), 422, "invalid field", loc("occurred_at")),
    Case("event_id not a UUID", batch(bad(event_id="evt-1234")), 422, "invalid field", loc("event_id"), "uuid_parsing"),
    Case(
        "data_elements a string",
        batch(bad(data_elements="PID")),
        422,
        "invalid field",
        loc("data_elements"),
        "list_type",
    ),
    Case("data_elements empty", batch(bad(data_elements=[])), 422, "invalid field", loc("data_elements"), "too_short"),
    Case("attribute float", batch(bad(attributes={"score": 0.5})), 422, "invalid field", loc("attributes", "score")),
    Case(
        "attribute nested",
        batch(bad(attributes={"ward": {"floor": 3}})),
        422,
        "invalid field",
        loc("attributes", "ward"),
    ),
    Case(
        "trace_id length",
        batch(bad(trace_id="0af7651916cd43dd8448eb211c80319")),
        422,
        "invalid field",
        loc("trace_id"),
        "string_pattern_mismatch",
    ),
    Case("span_id length", batch(bad(span_id="b7ad6b716920333")), 422, "invalid field", loc("span_id")),
    Case("actor type", batch(bad(actor={"id": "x", "type": "robot"})), 422, "invalid field", loc("actor", "type")),
    Case(
        "1001 events",
        batch(*(bad() for _ in range(1001))),
        422,
        "at most 1000 events",
        ["events"],
        "too_long",
    ),
    Case("5 MB body", five_megabytes(), 413, "exceeds the limit"),
    Case("invalid UTF-8", with_raw(b"M\xff\xfeX"), 400, "UTF-8"),
    Case("invalid UTF-8 in identifier", batch(bad()).replace(LEAK.encode(), LEAK.encode() + b"\xc3\x28"), 400, "UTF-8"),
    Case("not JSON", b"PID|1||MRN-LEAKCHECK-9931^^^HOSP^MR||DOE^JANE", 400, "not valid JSON"),
    Case("truncated JSON", batch(bad())[:-3], 400, "not valid JSON"),
    Case("empty body", b"", 400, "not valid JSON"),
    Case("JSON array", json.dumps([bad()]).encode(), 422, "invalid field"),
    Case("unknown top-level field", batch(bad(), dry_run=True), 422, "invalid field", ["dry_run"], "extra_forbidden"),
    Case("unknown event field", batch(bad(colour="blue")), 422, "invalid field", loc("colour"), "extra_forbidden"),
    Case(
        "unknown patient field",
        batch(bad(patient={**identifiers(LEAK), "birth_date": "1970-01-01"})),
        422,
        "invalid field",
        loc("patient", "birth_date"),
        "extra_forbidden",
    ),
    Case(
        "unknown identifier field",
        batch(bad(patient={"identifiers": [{"system": LEAK_SYSTEM, "value": LEAK, "use": "official"}]})),
        422,
        "invalid field",
        loc("patient", "identifiers", 0, "use"),
        "extra_forbidden",
    ),
    Case(
        "empty identifier list",
        batch(bad(patient={"identifiers": []})),
        422,
        "invalid field",
        loc("patient", "identifiers"),
        "too_short",
    ),
    Case("empty events list", batch(), 422, "invalid field", ["events"], "too_short"),
    Case("no events key", b"{}", 422, "invalid field", ["events"], "missing"),
    Case(
        "21 identifiers",
        batch(bad(patient=identifiers(*(f"{LEAK}-{i}" for i in range(21))))),
        422,
        "invalid field",
        loc("patient", "identifiers"),
        "too_long",
    ),
    Case(
        "empty identifier value",
        batch(bad(patient=identifiers(""))),
        422,
        "invalid field",
        loc("patient", "identifiers", 0, "value"),
    ),
    Case(
        "whitespace-only identifier value",
        batch(bad(patient=identifiers(LEAK, " \t "))),
        422,
        "invalid field",
        loc("patient", "identifiers", 1, "value"),
    ),
    Case(
        "identifier value too long",
        batch(bad(patient=identifiers(LEAK * 8))),
        422,
        "invalid field",
        loc("patient", "identifiers", 0, "value"),
        "string_too_long",
    ),
    Case(
        "NUL in identifier value",
        batch(bad(patient=identifiers(f"{LEAK}\u0000"))),
        422,
        "invalid field",
        loc("patient", "identifiers", 0, "value"),
        "value_error",
    ),
    Case("NUL in message_id", batch(bad(message_id="MSG\u00000001")), 422, "invalid field", loc("message_id")),
    Case("NUL in attribute", batch(bad(attributes={"note": "a\u0000b"})), 422, "invalid field", loc("attributes")),
    Case("NUL in data element", batch(bad(data_elements=["PID\u0000"])), 422, "invalid field", loc("data_elements", 0)),
    # jiter, the JSON parser, refuses an escaped lone surrogate as invalid JSON
    # before the model's own check (which catches them in Python input) is reached.
    Case("lone surrogate in message_id", with_raw(b"MSG\\ud800"), 400, "not valid JSON"),
    Case(
        "lone surrogate in identifier",
        batch(bad()).replace(LEAK.encode(), LEAK.encode() + b"\\udc00"),
        400,
        "not valid JSON",
    ),
    Case("one bad event of fifty", one_bad_of_many(), 422, "invalid field", ["events", 37, "action"], "enum"),
]


def problems(case: Case, response: httpx.Response) -> list[str]:
    """What is wrong with ``response`` as the answer to ``case`` (empty: nothing)."""
    found: list[str] = []
    if response.status_code != case.status:
        found.append(f"status {response.status_code}, expected {case.status}: {response.text[:300]}")
    if LEAK in response.text:
        found.append("the error body echoes the patient identifier")
    try:
        body = response.json()
    except ValueError:
        return [*found, f"error body is not JSON: {response.text[:200]}"]
    if not isinstance(body.get("detail"), str) or case.detail.lower() not in body["detail"].lower():
        found.append(f"detail {body.get('detail')!r} does not say {case.detail!r}")
    if case.loc is not None:
        errors = body.get("errors") or []
        matching = [e for e in errors if e.get("loc", [])[: len(case.loc)] == case.loc]
        if not matching:
            found.append(f"no error at {case.loc}: {errors}")
        elif case.type is not None and case.type not in {e.get("type") for e in matching}:
            found.append(f"error at {case.loc} is not of type {case.type}: {matching}")
        for err in errors:
            if not err.get("msg"):
                found.append(f"error without a message: {err}")
    return found


def test_bad_event_batches_are_refused_whole_and_named(service: Service) -> None:
    url = service.settings.database_url
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as client:
        first = client.post("/v1/events", json={"events": [event([GOOD_ID]) for _ in range(3)]})
        assert first.status_code == 200, first.text
        before = counts(url)
        assert before["events"] == 3 and before["patient_identifiers"] == 1

        failures: dict[str, list[str]] = {}
        for case in EVENT_CASES:
            response = client.post("/v1/events", content=case.body, headers=JSON)
            if found := problems(case, response):
                failures[case.name] = found
        assert not failures, json.dumps(failures, indent=1)
        assert counts(url) == before

        # The refused batches took no seq: the next good one continues the chain.
        after = client.post("/v1/events", json={"events": [event([GOOD_ID]), event([GOOD_ID])]})
    assert after.status_code == 200, after.text
    assert [r["seq"] for r in after.json()["results"]] == [3, 4]
    assert counts(url)["events"] == 5
    assert query(url, "SELECT count(*) AS n FROM patient_identifiers WHERE value LIKE 'MRN-LEAKCHECK%'")[0]["n"] == 0

    verified = run_cli(service.settings, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["rows_checked"] == 5
    assert report["head_chain_hash"] == after.json()["head"]["chain_hash"]


def test_body_over_the_limit_without_content_length_is_413(service: Service) -> None:
    """A chunked body declares no size: the limit holds while it streams in."""
    token = service.token(Role.EMITTER, ["epic-adt"])
    head = batch(bad(attributes={"pad": "x" * 1000}))[:-2]

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    with service.client(token) as client:
        response = client.post("/v1/events", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert "exceeds the limit" in response.json()["detail"]
    assert counts(service.settings.database_url)["events"] == 0


def test_outcome_as_string_or_float_is_stored_as_the_integer_code_or_refused(service: Service) -> None:
    """DESIGN: ``outcome`` is one of the integers 0, 4, 8, 12. Today the model is
    pydantic-lax and takes the JSON string "0"/"4" and the number 8.0 as those
    codes; either way (accepted or refused), what is stored and hashed is never
    anything but the integer."""
    token = service.token(Role.EMITTER, ["epic-adt"])
    url = service.settings.database_url
    with service.client(token) as client:
        for sent, code in (("0", 0), ("4", 4), (8.0, 8)):
            one = event([GOOD_ID], outcome=sent)
            response = client.post("/v1/events", json={"events": [one]})
            rows = query(url, "SELECT record FROM events WHERE event_id = $1::uuid", one["event_id"])
            if response.status_code == 422:
                assert response.json()["errors"][0]["loc"] == ["events", 0, "outcome"]
                assert rows == []
                continue
            assert response.status_code == 200, response.text
            assert f'"outcome":{code},' in rows[0]["record"]
            assert json.loads(rows[0]["record"])["outcome"] == code


def report_cases() -> list[Case]:
    ident = {"system": LEAK_SYSTEM, "value": LEAK}

    def body(**fields: Any) -> bytes:
        return json.dumps(fields).encode()

    forged = base64.urlsafe_b64encode(json.dumps({"t": LEAK, "s": 1}).encode()).decode()
    return [
        Case("no identifier", body(), 422, "invalid field", ["identifier"], "missing"),
        Case(
            "identifier without system",
            body(identifier={"value": LEAK}),
            422,
            "invalid field",
            ["identifier", "system"],
            "missing",
        ),
        Case(
            "identifier as a string",
            body(identifier=f"{LEAK_SYSTEM}|{LEAK}"),
            422,
            "invalid field",
            ["identifier"],
        ),
        Case(
            "blank identifier value",
            body(identifier={"system": LEAK_SYSTEM, "value": "  "}),
            422,
            "invalid field",
            ["identifier", "value"],
        ),
        Case(
            "NUL in identifier value",
            body(identifier={"system": LEAK_SYSTEM, "value": f"{LEAK}\u0000"}),
            422,
            "invalid field",
            ["identifier", "value"],
        ),
        Case(
            "unknown field",
            body(identifier=ident, patient_name="DOE^JANE"),
            422,
            "invalid field",
            ["patient_name"],
            "extra_forbidden",
        ),
        Case(
            "unknown identifier field",
            body(identifier={**ident, "use": "usual"}),
            422,
            "invalid field",
            ["identifier", "use"],
            "extra_forbidden",
        ),
        Case("bad cursor", body(identifier=ident, cursor="not-a-cursor"), 422, "cursor", ["cursor"]),
        Case("forged cursor", body(identifier=ident, cursor=forged), 422, "cursor", ["cursor"]),
        Case(
            "from after to",
            body(identifier=ident, **{"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            422,
            "'from' is after 'to'",
            ["from"],
        ),
        Case("from garbage", body(identifier=ident, **{"from": "last week"}), 422, "invalid field", ["from"]),
        Case("from without offset", body(identifier=ident, **{"from": "2026-11-01T00:00:00"}), 422, "offset", ["from"]),
        Case("limit 0", body(identifier=ident, limit=0), 422, "invalid field", ["limit"]),
        Case("limit 1001", body(identifier=ident, limit=1001), 422, "invalid field", ["limit"]),
        Case("not JSON", f"identifier={LEAK}".encode(), 400, "not valid JSON"),
    ]


def test_bad_report_queries_are_refused_naming_the_field(service: Service) -> None:
    url = service.settings.database_url
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    officer = service.token(Role.PRIVACY_OFFICER)
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": [event([(LEAK_SYSTEM, LEAK)])]}).raise_for_status()
    before = counts(url)
    failures: dict[str, list[str]] = {}
    with service.client(officer) as client:
        for case in report_cases():
            response = client.post("/v1/reports/patient-access", content=case.body, headers=JSON)
            if found := problems(case, response):
                failures[case.name] = found
        assert not failures, json.dumps(failures, indent=1)
        # A refused report is not a read of PHI: no audit-log-query event was appended.
        assert counts(url) == before
        good = client.post("/v1/reports/patient-access", json={"identifier": {"system": LEAK_SYSTEM, "value": LEAK}})
    assert good.status_code == 200, good.text
    assert len(good.json()["events"]) == 1
    assert counts(url)["events"] == before["events"] + 1


def test_report_takes_whole_utc_days(service: Service) -> None:
    """PatientAccessQuery: ``from``/``to`` take a date (whole days, UTC), both ends inclusive."""
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    officer = service.token(Role.PRIVACY_OFFICER)
    late = event([GOOD_ID], occurred_at="2026-11-24T23:30:00-05:00")  # 2026-11-25 04:30 UTC
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": [late]}).raise_for_status()
    ident = {"system": GOOD_ID[0], "value": GOOD_ID[1]}
    found = {}
    with service.client(officer) as client:
        for day in ("2026-11-24", "2026-11-25"):
            response = client.post("/v1/reports/patient-access", json={"identifier": ident, "from": day, "to": day})
            assert response.status_code == 200, response.text
            found[day] = [e["event_id"] for e in response.json()["events"] if e["event_type"] == "hl7v2-message"]
    assert found == {"2026-11-24": [], "2026-11-25": [late["event_id"]]}


def test_forged_cursor_out_of_range_is_refused(service: Service) -> None:
    """A cursor is client input: any that decodes but is out of range is a 422, not a 500."""
    officer = service.token(Role.PRIVACY_OFFICER)
    forged = [
        {"t": "2026-01-01T00:00:00.000000Z", "s": float("inf"), "m": 5},  # Infinity: OverflowError
        {"t": "2026-01-01T00:00:00.000000Z", "s": 10**24, "m": 5},  # beyond bigint
        {"t": "2026-01-01T00:00:00.000000Z", "s": 1, "m": 10**24},
        {"t": "0001-01-01T00:00:00+14:00", "s": 1, "m": 5},  # before datetime.min in UTC
    ]
    statuses = []
    with service.client(officer) as client:
        for data in forged:
            cursor = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
            response = client.post(
                "/v1/reports/patient-access",
                json={"identifier": {"system": GOOD_ID[0], "value": GOOD_ID[1]}, "cursor": cursor},
            )
            statuses.append(response.status_code)
    assert statuses == [422] * len(forged)
