"""The system id ``auditsvc`` (and ``auditsvc:*``) is the service's own.

Reports trust the service's own events (reads of the log, and the registry
changes, reviews and suspensions built on them), so an emitter must not be
able to write one: no emitter token can be bound to a reserved id, and an
event that claims one is refused (403, ``source_not_allowed``) even from a
token that was bound to it before the rule existed. Real service, real
PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from auditsvc.domain.errors import InvalidInput
from auditsvc.domain.reserved import is_reserved_system
from auditsvc.domain.tokens import Role, new_token
from auditsvc.keys import load_keys

from .conftest import Service, as_superuser, event, query


@pytest.mark.parametrize("system_id", ["auditsvc", "auditsvc:privacy_officer", "AuditSvc", " auditsvc:x"])
def test_the_service_s_ids_are_reserved(system_id: str) -> None:
    assert is_reserved_system(system_id)


@pytest.mark.parametrize("system_id", ["auditsvc-mirror", "epic-adt", "urn:auditsvc", "my-auditsvc"])
def test_other_ids_are_not(system_id: str) -> None:
    assert not is_reserved_system(system_id)


def test_no_emitter_token_can_be_bound_to_a_reserved_id(service: Service) -> None:
    keys = load_keys(service.settings, sealing=False)
    with pytest.raises(InvalidInput, match="reserved"):
        new_token(keys, Role.EMITTER, ["epic-adt", "auditsvc"])
    with pytest.raises(InvalidInput, match="reserved"):
        new_token(keys, Role.EMITTER, ["auditsvc:reviews"])


def test_an_event_claiming_the_service_as_source_is_refused_even_from_an_old_binding(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    url = str(service.settings.database_url)
    # A token bound to "auditsvc" before the rule existed (written as the table allows).
    as_superuser(url, "UPDATE api_tokens SET systems = ARRAY['epic-adt', 'auditsvc']")
    with service.client(token) as http:
        answer: httpx.Response = http.post(
            "/v1/events", json={"events": [event(), event(source="auditsvc"), event(source="auditsvc:reviews")]}
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["refused"] == [
            {"index": 1, "reason": "source_not_allowed"},
            {"index": 2, "reason": "source_not_allowed"},
        ]
        assert query(url, "SELECT count(*) AS n FROM events")[0]["n"] == 0  # nothing of the batch stored
        assert http.post("/v1/events", json={"events": [event()]}).status_code == 200
