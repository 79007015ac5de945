"""Property-based API testing with schemathesis against ``/openapi.json``.

The real service on real PostgreSQL, over HTTP. Every operation in the
OpenAPI document gets generated requests, valid ones (positive) and invalid
ones (negative), sent with a token of the role the operation needs, and
every answer goes through schemathesis's checks: no 5xx, a status and a
content type the document declares, a body that matches the declared schema,
valid input accepted and invalid input refused, authentication enforced.

The run is bounded (``EXAMPLES`` per operation and mode, no shrinking) so
that it stays well under a minute; the number of requests it made is printed
(``pytest -s`` shows it) and asserted.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from auditsvc.domain.tokens import Role

from .conftest import Service, event

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
SOURCE_SYSTEM = "epic-adt"
ACTOR = "schemathesis-seed"  # the actor of one event stored before the run

ROLE_BY_OPERATION: dict[tuple[str, str], Role | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("POST", "/v1/events"): Role.EMITTER,
    ("GET", "/v1/events/{event_id}"): Role.AUDITOR,
    ("POST", "/v1/reports/patient-access"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/reports/system-access"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/reports/actor-access"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/reports/activity"): Role.AUDITOR,
    ("POST", "/v1/reports/disclosures"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/disclosure-suspensions"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/checkpoints"): Role.ADMIN,
    ("GET", "/v1/reports/coverage"): Role.AUDITOR,
    ("POST", "/v1/reports/flows"): Role.PRIVACY_OFFICER,
    ("GET", "/v1/reports/baa-gaps"): Role.PRIVACY_OFFICER,
    ("GET", "/v1/alerts"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): Role.PRIVACY_OFFICER,
    ("GET", "/v1/systems"): Role.AUDITOR,
    ("GET", "/v1/systems/{system_id}"): Role.AUDITOR,
    ("PUT", "/v1/systems/{system_id}"): Role.ADMIN,
    ("GET", "/v1/quarantine"): Role.ADMIN,
    ("GET", "/v1/reviews/break-glass"): Role.PRIVACY_OFFICER,
    ("POST", "/v1/reviews"): Role.PRIVACY_OFFICER,
}


def role_for(method: str, path: str) -> Role | None:
    if (method, path) in ROLE_BY_OPERATION:
        return ROLE_BY_OPERATION[(method, path)]
    if path.startswith(("/v1/checkpoints", "/v1/proofs")):
        return Role.AUDITOR
    raise AssertionError(f"no role chosen for {method} {path}: add it to ROLE_BY_OPERATION")


def bind_to_emitter(body: Any) -> None:
    """Valid events must name a source system the emitter token is bound to,
    or they are (rightly) refused with 403 before they reach the log."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        for event in body["events"]:
            if isinstance(event, dict) and isinstance(event.get("source"), dict):
                event["source"]["system_id"] = SOURCE_SYSTEM


def integers_as_integers(body: Any) -> None:
    """JSON Schema's ``integer`` admits ``-3234.0``; event attributes take
    integers written as integers only (pydantic strict), and JSON Schema has
    no way to say so."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        for event in body["events"]:
            attributes = event.get("attributes") if isinstance(event, dict) else None
            if isinstance(attributes, dict):
                for key, value in attributes.items():
                    if isinstance(value, float) and value.is_integer():
                        attributes[key] = int(value)


def make_valid_for_state(path: str, body: Any) -> None:
    """What a schema cannot say about valid requests, because it depends on
    server state or on another field, or cannot be said in JSON Schema:
    emitters may only name the source systems their token is bound to;
    attribute integers have no fraction; a report cursor is one the service
    issued; a report's ``from`` is not after its ``to``."""
    if path == "/v1/events":
        bind_to_emitter(body)
        integers_as_integers(body)
    if path == "/v1/systems/{system_id}" and isinstance(body, dict):
        body.pop("system_id", None)  # must be the URL's
        if isinstance(body.get("baa"), dict):  # on file needs a start date, and dates in order
            body["baa"].update(effective="2024-01-01", expires=None)
    if path == "/v1/reports/system-access" and isinstance(body, dict):
        body["system_id"] = SOURCE_SYSTEM  # a system the log knows (ACTOR's events name it)
    if path == "/v1/reports/actor-access" and isinstance(body, dict):
        body["actor_id"] = ACTOR
    if path.startswith("/v1/reports/") and isinstance(body, dict):
        body.pop("cursor", None)
        if body.get("from") is not None and body.get("to") is not None:
            del body["to"]
    # An accounting is as of a request date not in the future; a suspension
    # ends in the future (an oral one within 30 days, naming the official),
    # and its recipient is not the service itself.
    if path == "/v1/reports/disclosures" and isinstance(body, dict):
        body.pop("requested_at", None)
    if path == "/v1/disclosure-suspensions" and isinstance(body, dict):
        body.update(ends="2099-01-01", oral=False, recipient_system_id="state-oig")


# Proofs are valid only for sizes the log has reached: schema-valid numbers
# are mostly refused (422, "seq is not in a tree of size 7"). Those operations
# are checked on everything but the acceptance of "valid" data.
# Likewise a review (of an event that exists and is break-glass) and the queue's cursor and date order.
STATE_DEPENDENT = {"/v1/proofs/inclusion", "/v1/proofs/consistency", "/v1/reviews", "/v1/reviews/break-glass"}


def exercise(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> Counter[int]:
    """Run one operation in one mode; the statuses answered. Raises
    schemathesis's failure (with a curl command to reproduce) on the first
    example that fails a check."""
    statuses: Counter[int] = Counter()
    excluded = [positive_data_acceptance] if operation.path in STATE_DEPENDENT else []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests each run: a failure reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    # The token as a fixed header: negative cases then never "remove" it
    # (schemathesis would count a request it thinks unauthenticated as invalid).
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: schemathesis.Case) -> None:
        if mode is GenerationMode.POSITIVE:
            make_valid_for_state(operation.path, case.body)
            if case.path_parameters and "system_id" in case.path_parameters:
                # schemathesis ignores the id's pattern in a path; an id with a newline cannot be routed
                case.path_parameters["system_id"] = "acme-lab"
            if (
                operation.path in ("/v1/reports/coverage", "/v1/reports/baa-gaps") and case.query
            ):  # from <= to, real dates
                case.query.pop("from", None)
                case.query.pop("to", None)
        response = case.call_and_validate(timeout=30, excluded_checks=excluded)
        statuses[response.status_code] += 1

    run()
    return statuses


def test_openapi_document_holds_for_generated_requests(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = {role: service.token(role, [SOURCE_SYSTEM] if role is Role.EMITTER else None) for role in Role}
    with service.client(tokens[Role.EMITTER]) as emitter:
        seed = event(source=SOURCE_SYSTEM, actor={"id": ACTOR, "type": "system"})
        emitter.post("/v1/events", json={"events": [seed]}).raise_for_status()
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    answered: dict[str, Counter[int]] = {}
    failures: dict[str, str] = {}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        role = role_for(operation.method.upper(), operation.path)
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            try:
                answered[label] = exercise(operation, mode, headers)
            except Unsatisfiable:
                answered[label] = Counter()  # nothing to make invalid: no parameters, no body
            except (Exception, BaseExceptionGroup) as exc:
                failures[label] = str(exc)
    total = sum(sum(c.values()) for c in answered.values())
    with capsys.disabled():  # the figure is wanted even without -s
        print(f"\nschemathesis: {total} generated requests over {len(answered)} operation/mode pairs")
        print(f"  in {time.monotonic() - started:.1f} s, {EXAMPLES} examples each at most")
        for label, statuses in sorted(answered.items()):
            spread = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
            print(f"  {sum(statuses.values()):4d}  {label}  ({spread})")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    # Valid batches really were stored, not all refused for some reason.
    assert answered["POST /v1/events [positive]"][200] >= EXAMPLES // 4, answered["POST /v1/events [positive]"]
    assert total >= 8 * EXAMPLES


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
def test_openapi_document_is_served_without_a_token(service: Service, path: str) -> None:
    with service.client() as client:
        assert client.get(path).status_code == 200
