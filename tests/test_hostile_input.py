"""Hostile input: every limit exceeded is a 4xx that names the limit and the
place, stores nothing and echoes no value; a value just at the limit is taken.

Limits (README "Configuration"): body size (413), JSON nesting depth, array
length and object size (422, checked before parsing, auditsvc/api/limits.py),
batch size, list lengths, attribute count and string lengths (422, the event
model). Most run against a service with small limits, so that "at the
limit" is a valid request of modest size.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditsvc.api.limits import JsonLimits, StructureLimitExceeded, check_json_structure, to_json_pointer
from auditsvc.domain.ingest import MAX_LISTED_ERRORS
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import Service, event, query, running_service

LEAK = "MRN-HOSTILE-7731"  # synthetic; must never come back in an error body
LEAK_ID = ("urn:oid:2.16.840.1.113883.3.9999.7", LEAK)
JSON = {"Content-Type": "application/json"}

SMALL = {
    "max_body_bytes": 64 * 1024,
    "max_batch_events": 10,
    "max_json_depth": 6,  # exactly a valid event batch's depth
    "max_json_array_items": 50,
    "max_json_object_keys": 32,  # exactly the event model's attribute limit
}


@pytest.fixture
def small(settings: Settings) -> Iterator[Service]:
    with running_service(settings.model_copy(update=SMALL)) as service:
        yield service


def tree_size(service: Service) -> int:
    return int(query(str(service.settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])


def body_of(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def post(client: httpx.Client, body: bytes, path: str = "/v1/events") -> httpx.Response:
    response = client.post(path, content=body, headers=JSON)
    if response.status_code >= 400:
        assert LEAK not in response.text, response.text
    return response


def refused(response: httpx.Response, status: int, *phrases: str, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    for phrase in phrases:
        assert phrase in body["detail"], body
    if loc is not None:
        assert loc in [e["loc"] for e in body.get("errors", [])], body
    return body


def leaky(**overrides: Any) -> dict[str, Any]:
    return event([LEAK_ID], **overrides)


def test_structure_limits_each_refused_by_name_and_taken_at_the_limit(small: Service) -> None:
    token = small.token(Role.EMITTER, ["epic-adt"])
    with small.client(token) as client:
        # Depth: a batch is 6 deep (body, events, event, patient, identifiers, identifier).
        assert post(client, body_of(leaky())).status_code == 200
        deep = leaky()
        deep["patient"]["identifiers"][0]["use"] = {"coding": [LEAK]}
        before = tree_size(small)
        response = refused(
            post(client, body_of(deep)),
            422,
            "nested deeper than 6 levels",
            "AUDITSVC_MAX_JSON_DEPTH=6",
            "/events/0/patient/identifiers/0/use",
            loc=["events", 0, "patient", "identifiers", 0, "use"],
        )
        assert response["errors"][0]["type"] == "json_too_deep"

        # Array length: 50 data elements taken, 51 refused before the model sees them.
        assert post(client, body_of(leaky(data_elements=[f"OBX-{i}" for i in range(50)]))).status_code == 200
        response = refused(
            post(client, body_of(leaky(data_elements=[f"OBX-{i}" for i in range(51)]))),
            422,
            "more than 50 items",
            "AUDITSVC_MAX_JSON_ARRAY_ITEMS=50",
            loc=["events", 0, "data_elements"],
        )
        assert response["errors"][0]["type"] == "json_array_too_long"

        # Object size: 32 attributes taken, 33 refused (any object, named by its place).
        attributes = {f"a{i}": i for i in range(32)}
        assert post(client, body_of(leaky(attributes=attributes))).status_code == 200
        refused(
            post(client, body_of(leaky(attributes={**attributes, "a32": LEAK}))),
            422,
            "more than 32 members",
            "AUDITSVC_MAX_JSON_OBJECT_KEYS=32",
            loc=["events", 0, "attributes"],
        )

        # Batch size: 10 events taken, 11 refused.
        assert post(client, body_of(*(leaky() for _ in range(10)))).status_code == 200
        refused(post(client, body_of(*(leaky() for _ in range(11)))), 422, "at most 10 events", loc=["events"])

        # Body size: exactly 64 KiB taken (white space pads a valid batch), one byte more refused.
        padded = body_of(leaky())
        padded += b" " * (64 * 1024 - len(padded))
        assert post(client, padded).status_code == 200
        refused(post(client, padded + b" "), 413, "exceeds the limit")
    assert tree_size(small) == before + 2 + 10 + 1  # only what was taken was stored


def test_deep_and_wide_bodies_are_refused_quickly_and_never_reach_the_parser(service: Service) -> None:
    """Default limits; bodies that used to cost seconds of CPU (or, for
    ``[{}, {}, ...]``, a minute and eight million error objects)."""
    token = service.token(Role.EMITTER, ["epic-adt"])
    hostile = {
        "deep nesting": (b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "json_too_deep"),
        "a million empty events": (b'{"events": [' + b",".join([b"{}"] * 1_000_000) + b"]}", "too_long"),
        "200,000 attributes": (
            body_of(leaky(attributes={f"k{i}": [] for i in range(200_000)})),
            "json_object_too_large",
        ),
        "a million data elements": (
            b'{"events": [{"data_elements": [' + b",".join([b"0"] * 1_000_000) + b"]}]}",
            "json_array_too_long",
        ),
    }
    with service.client(token) as client:
        for name, (body, kind) in hostile.items():
            started = time.monotonic()
            response = post(client, body)
            assert time.monotonic() - started < 15, name  # a guard against runaway work, not a speed target
            assert response.status_code == 422, (name, response.text[:300])
            assert response.json()["errors"][0]["type"] == kind, name
    assert tree_size(service) == 0


def test_many_invalid_fields_are_listed_up_to_a_bound_with_their_total(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    bad = [{"attributes": {f"k{i}": [] for i in range(60)}} for _ in range(1000)]
    with service.client(token) as client:
        started = time.monotonic()
        response = post(client, json.dumps({"events": bad}).encode())
    # A guard against work that grows with the square of the batch, not a
    # speed target (those are in bench/): generous enough for a loaded CI box.
    assert time.monotonic() - started < 30
    body = refused(response, 422, "invalid field(s)")
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert int(body["detail"].split()[0]) > 100_000  # the total, not the listed few
    assert tree_size(service) == 0


# Every bounded string of the event, at its limit. Pattern-bounded codes
# (event_type, purpose_of_use, system ids, attribute keys) are bounded by
# their pattern's repetition count.
STRING_FIELDS: dict[str, tuple[int, Any]] = {
    "patient.identifiers.0.system": (256, "x"),
    "patient.identifiers.0.value": (128, "7"),
    "data_elements.0": (128, "P"),
    "source.name": (256, "n"),
    "destination.name": (256, "n"),
    "actor.id": (256, "u"),
    "actor.role": (128, "r"),
    "actor.name": (256, "n"),
    "message_id": (199, "M"),
    "attributes.note": (1024, "a"),
    "event_type": (64, "e"),
    "purpose_of_use": (64, "T"),
    "source.system_id": (128, "s"),
    "destination.system_id": (128, "d"),
}


def with_value(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(base))
    *parents, last = dotted.split(".")
    node = copy
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copy


def test_every_string_and_list_limit_of_an_event(service: Service) -> None:
    systems = ["s" * 128, "epic-adt"]
    token = service.token(Role.EMITTER, systems)
    at_limit = leaky(attributes={"k" + "e" * 63: 1})
    for dotted, (limit, char) in STRING_FIELDS.items():
        at_limit = with_value(at_limit, dotted, char * limit)
    at_limit["patient"]["identifiers"] = [{"system": "x" * 256, "value": f"{LEAK}-{i:03d}"} for i in range(20)]
    at_limit["data_elements"] = [f"D{i}".ljust(128, "x") for i in range(200)]
    with service.client(token) as client:
        accepted = post(client, body_of(at_limit))
        assert accepted.status_code == 200, accepted.text
        before = tree_size(service)

        failures = {}
        for dotted, (limit, char) in STRING_FIELDS.items():
            response = post(client, body_of(with_value(at_limit, dotted, char * (limit + 1))))
            loc = ["events", 0, *(int(p) if p.isdigit() else p for p in dotted.split("."))]
            if response.status_code != 422 or not any(e["loc"][: len(loc)] == loc for e in response.json()["errors"]):
                failures[dotted] = response.text[:300]
        lists = {
            "patient.identifiers": [{"system": "x", "value": f"{LEAK}-{i}"} for i in range(21)],
            "data_elements": [f"D{i}" for i in range(201)],
            "attributes": {f"k{i}": i for i in range(33)},
        }
        for dotted, too_many in lists.items():
            response = post(client, body_of(with_value(at_limit, dotted, too_many)))
            errors = response.json().get("errors", []) if response.status_code == 422 else []
            loc = ["events", 0, *dotted.split(".")]
            if not any(e["loc"] == loc and e["type"] == "too_long" and "at most" in e["msg"] for e in errors):
                failures[dotted] = response.text[:300]
        long_key = post(client, body_of(with_value(at_limit, "attributes", {"k" * 65: 1})))
        if long_key.status_code != 422:
            failures["attribute key"] = long_key.text[:300]
    assert not failures, json.dumps(failures, indent=1)
    assert tree_size(service) == before


def test_report_request_limits(small: Service) -> None:
    officer = small.token(Role.PRIVACY_OFFICER)
    identifier = {"system": LEAK_ID[0], "value": LEAK}
    with small.client(officer) as client:
        before = tree_size(small)
        big = json.dumps({"identifier": identifier, "cursor": "c" * 70_000}).encode()
        refused(post(client, big, "/v1/reports/patient-access"), 413, "exceeds the limit")
        nested = json.dumps({"identifier": identifier, "cursor": [[[[[[["x"]]]]]]]}).encode()
        where = ["cursor", 0, 0, 0, 0, 0]  # the array that opens the 7th level
        refused(post(client, nested, "/v1/reports/patient-access"), 422, "AUDITSVC_MAX_JSON_DEPTH", loc=where)
        long_value = json.dumps({"identifier": {**identifier, "value": LEAK * 10}}).encode()
        refused(post(client, long_value, "/v1/reports/patient-access"), 422, loc=["identifier", "value"])
        assert tree_size(small) == before  # a refused report reads nothing, so audits nothing
        ok = post(client, json.dumps({"identifier": identifier}).encode(), "/v1/reports/patient-access")
        assert ok.status_code == 200, ok.text


def test_security_headers_on_answers_errors_and_unknown_paths(service: Service) -> None:
    auditor = service.token(Role.AUDITOR)
    with service.client(auditor) as client:
        responses = {
            "json": client.get("/healthz"),
            "text": client.get("/v1/checkpoints/verifier-key"),
            "401": httpx.get(f"{service.url}/v1/checkpoints/latest"),
            "404": client.get("/no/such/path"),
            "422": client.get("/v1/events/not-a-uuid"),
            "405": client.delete("/v1/events"),
            "openapi": client.get("/openapi.json"),
        }
        docs = client.get("/docs")
    for name, response in responses.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["cache-control"] == "no-store", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["content-security-policy"].startswith("default-src 'none'"), name
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
        assert "strict-transport-security" not in headers, name  # plain HTTP here; see test_tls.py
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]


# The fast structure check against a plain reference: parse, then walk.


def reference_violation(text: str, limits: JsonLimits) -> set[str]:
    found: set[str] = set()

    def walk(node: Any, depth: int) -> None:
        if isinstance(node, list | Pairs):
            if depth > limits.max_depth:
                found.add("json_too_deep")
            items = [value for _, value in node] if isinstance(node, Pairs) else node
            if isinstance(node, Pairs) and len(node) > limits.max_object_keys:
                found.add("json_object_too_large")
            if not isinstance(node, Pairs) and len(node) > limits.max_array_items:
                found.add("json_array_too_long")
            for item in items:
                walk(item, depth + 1)

    walk(json.loads(text, object_pairs_hook=Pairs), 1)
    return found


class Pairs(list[tuple[str, Any]]):
    """An object as its members, duplicates kept (they count)."""


TRICKY_TEXT = st.text(alphabet='[]{},:"\\ aé\u2028', max_size=6)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TRICKY_TEXT, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(
    value=JSON_VALUES,
    limits=st.builds(JsonLimits, st.integers(1, 5), st.integers(1, 4), st.integers(1, 4)),
    ascii_only=st.booleans(),
)
def test_structure_check_agrees_with_parsing_then_walking(value: Any, limits: JsonLimits, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = reference_violation(text, limits)
    try:
        check_json_structure(text.encode(), limits)
    except StructureLimitExceeded as exc:
        assert exc.kind in expected, (text, exc.kind, expected)
        assert to_json_pointer(exc.loc) in exc.message
    else:
        assert not expected, (text, expected)


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=60) | st.text(alphabet='[]{},:"\\ 0a', max_size=60).map(str.encode))
def test_structure_check_takes_any_bytes(body: bytes) -> None:
    """Malformed input is the parser's to refuse: the check only ever passes
    or names a limit, whatever the bytes."""
    with contextlib.suppress(StructureLimitExceeded):
        check_json_structure(body, JsonLimits(3, 2, 2))


def test_json_pointer_escapes() -> None:
    assert to_json_pointer(["events", 0, "a/b~c"]) == "/events/0/a~1b~0c"
    assert to_json_pointer([]) == ""
