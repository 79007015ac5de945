"""The service's fast batch validation agrees with the SDK's ``PhiAccess``:
same events accepted, same events refused, byte-identical normal forms."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from auditsvc_sdk import InvalidEvent, PhiAccess
from auditsvc_sdk._core import encode_event
from auditsvc_sdk._wire import parse_event_batch
from pydantic import ValidationError

from auditsvc.demo import generate_day

from .conftest import event


def _both(events: list[dict[str, Any]]) -> tuple[Any, Any]:
    body = json.dumps({"events": events})
    try:
        wire: Any = [w.json for w in parse_event_batch(body)]
    except ValidationError as exc:
        wire = sorted(tuple(e["loc"][2:]) for e in exc.errors())
    try:
        model: Any = [PhiAccess.model_validate_json(json.dumps(e)).to_json() for e in events]
    except ValidationError as exc:
        model = sorted(tuple(e["loc"]) for e in exc.errors())
    return wire, model


def test_a_day_of_varied_events_normalises_identically() -> None:
    events = generate_day(seed=11, scale=0.5)
    wire, model = _both(events)
    assert wire == model
    assert len(wire) == len(events)


ODD_BUT_VALID: list[dict[str, Any]] = [
    {"occurred_at": "2026-03-08T01:59:59.999999999-05:00"},
    {"occurred_at": "2026-11-24 09:30:00+05:30"},
    {"event_id": "78812811-622E-4259-8FD2-B30EA20E6357"},  # upper case; fixed so every collection agrees
    {"patient": {"identifiers": [{"system": " MRN ", "value": " 42 "}, {"system": "MRN", "value": "42"}]}},
    {
        "patient": {
            "identifiers": [
                {"system": "A", "value": "1"},
                {"system": "B", "value": "2"},
                {"system": "A", "value": "1"},
                {"system": "C", "value": "3"},
            ]
        }
    },
    {"attributes": {}},
    {"attributes": {"n": 2**53 - 1, "b": False, "s": "Zoë"}},
    {"message_id": None, "purpose_of_use": None, "trace_id": None},
    {"actor": {"id": "x", "type": "user", "role": None, "name": None}},
    {"outcome": 12},
    {"outcome": "8"},
    {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"},
]

INVALID: list[dict[str, Any]] = [
    {"occurred_at": "2026-11-24T09:30:00"},
    {"occurred_at": 1700000000},
    {"occurred_at": "0001-01-01T00:00:00+05:30"},
    {"action": "X"},
    {"outcome": 3},
    {"outcome": 1.5},
    {"event_id": "not-a-uuid"},
    {"patient": {"identifiers": []}},
    {"patient": {"identifiers": [{"system": "MRN", "value": "   "}]}},
    {"patient": {"identifiers": [{"system": "MRN", "value": "a\u0000b"}]}},
    {"patient": {"identifiers": [{"system": "MRN", "value": "1", "use": "usual"}]}},
    {"data_elements": []},
    {"data_elements": "PID"},
    {"attributes": {"x": 1.0}},
    {"attributes": {"x": {"nested": 1}}},
    {"attributes": {"naïve": "key"}},
    {"attributes": {"n": 2**53}},
    {"trace_id": "abc"},
    {"actor": {"id": "", "type": "user"}},
    {"actor": {"id": "x", "type": "robot"}},
    {"unknown_field": 1},
]


@pytest.mark.parametrize("overrides", ODD_BUT_VALID, ids=repr)
def test_odd_but_valid_events_are_accepted_and_normalised_alike(overrides: dict[str, Any]) -> None:
    wire, model = _both([event(**overrides)])
    assert wire == model
    assert isinstance(wire[0], dict)


@pytest.mark.parametrize("overrides", INVALID, ids=repr)
def test_invalid_events_are_refused_by_both_at_the_same_field(overrides: dict[str, Any]) -> None:
    wire, model = _both([event(**overrides)])
    assert not isinstance(wire[0], dict) and not isinstance(model[0], dict), (wire, model)
    # The same top-level field is named by both.
    assert {loc[0] for loc in wire} == {loc[0] for loc in model}


def test_missing_required_fields_are_refused_by_both() -> None:
    for field in ("occurred_at", "action", "event_type", "patient", "data_elements", "source", "destination", "actor"):
        body = event()
        del body[field]
        wire, model = _both([body])
        assert (field,) in wire and (field,) in model


def test_null_system_name_is_dropped_alike() -> None:
    body = event()
    body["source"] = {"system_id": "epic-adt", "name": None}
    body["destination"] = {"system_id": "has space"}
    wire, model = _both([body])
    assert wire == model == [("destination", "system_id")]
    body["destination"] = {"system_id": "lab-lis", "name": "  Lab  "}
    wire, model = _both([body])
    assert wire == model
    assert wire[0]["source"] == {"system_id": "epic-adt"} and wire[0]["destination"]["name"] == "Lab"


# record() sends a mapping as validated, without the normal forms (the
# service applies them): what the service makes of those bytes must be
# exactly the normal form the SDK's model gives.
def _service_view(payload: bytes) -> dict[str, Any]:
    return parse_event_batch(b'{"events":[' + payload + b"]}")[0].json


def test_what_record_sends_of_a_day_normalises_to_the_model_form() -> None:
    events = generate_day(seed=12, scale=0.3)
    for e in events:
        assert _service_view(encode_event(e)) == PhiAccess.model_validate(e).to_json()


@pytest.mark.parametrize("overrides", ODD_BUT_VALID, ids=repr)
def test_what_record_sends_of_odd_events_normalises_to_the_model_form(overrides: dict[str, Any]) -> None:
    e = event(**overrides)
    assert _service_view(encode_event(e)) == PhiAccess.model_validate(e).to_json()


def test_record_fixes_the_event_id_of_an_event_without_one() -> None:
    e = event()
    del e["event_id"]
    sent = _service_view(encode_event(e))
    assert uuid.UUID(sent["event_id"]).version == 7


@pytest.mark.parametrize("overrides", INVALID, ids=repr)
def test_record_refuses_what_the_service_refuses(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        encode_event(event(**overrides))
