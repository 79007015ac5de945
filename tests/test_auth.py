"""Bearer tokens and roles through the real API and the real CLI."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta

import httpx

from auditsvc.domain.tokens import Role, new_token
from auditsvc.keys import load_keys
from auditsvc.settings import Settings
from auditsvc.store.engine import PoolConfig, create_engine
from auditsvc.store.session import driver_connection
from auditsvc.store.tokens import insert_token

from .conftest import Service, event, query, run_cli

PATIENT = ("urn:oid:2.16.840.1.113883.3.9999.3", "MRN-SYNTH-AUTH-7")
REPORT = {"identifier": {"system": PATIENT[0], "value": PATIENT[1]}}
UNKNOWN_EVENT = "/v1/events/0192f3a4-1b2c-7d3e-8f40-123456789abc"


def parts(token: str) -> tuple[str, str]:
    """(token id, secret) of ``asv_<id>_<secret>``; the secret may itself hold '_'."""
    prefix, token_id, secret = token.split("_", 2)
    assert prefix == "asv" and len(token_id) == 16
    return token_id, secret


def insert(settings: Settings, role: Role, systems: list[str], expires_at: datetime | None) -> str:
    token = new_token(load_keys(settings), role, systems)

    async def _insert() -> None:
        engine = create_engine(str(settings.database_url), PoolConfig.from_settings(settings))
        try:
            async with driver_connection(engine) as conn:
                await insert_token(conn, token.token_id, token.secret_hmac, role.value, systems, None, expires_at)
        finally:
            await engine.dispose()

    asyncio.run(_insert())
    return token.token


def stored_event_ids(service: Service) -> set[str]:
    return {str(r["event_id"]) for r in query(service.settings.database_url, "SELECT event_id FROM events")}


def post_event(client: httpx.Client, source: str = "epic-adt") -> tuple[httpx.Response, str]:
    one = event([PATIENT], source=source)
    return client.post("/v1/events", json={"events": [one]}), one["event_id"]


def assert_401(response: httpx.Response, says: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert says in response.json()["detail"]


def assert_403(response: httpx.Response, role: Role) -> None:
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert f"the token's role is {role.value}" in detail


def test_missing_malformed_and_unknown_tokens_are_401(service: Service) -> None:
    real = service.token(Role.EMITTER, ["epic-adt"])
    token_id, secret = parts(real)
    other_secret = secrets.token_urlsafe(32)
    headers: list[tuple[dict[str, str], str]] = [
        ({}, "missing bearer token"),
        ({"Authorization": ""}, "missing bearer token"),
        ({"Authorization": f"Basic {real}"}, "Bearer <token>"),
        ({"Authorization": "Bearer"}, "Bearer <token>"),
        ({"Authorization": "Bearer not-a-token"}, "malformed"),
        ({"Authorization": f"Bearer {real}x"}, "malformed"),
        ({"Authorization": f"Bearer asv_{token_id[:-1]}_{secret}"}, "malformed"),
        ({"Authorization": f"Bearer {secret}"}, "malformed"),
        ({"Authorization": f"Bearer asv_{secrets.token_hex(8)}_{secret}"}, "invalid bearer token"),  # unknown id
        ({"Authorization": f"Bearer asv_{token_id}_{other_secret}"}, "invalid bearer token"),  # wrong secret
        ({"Authorization": f"Bearer asv_{token_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"}, "invalid"),
    ]
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for header, says in headers:
            for response in (
                client.post("/v1/events", json={"events": [event([PATIENT])]}, headers=header),
                client.post("/v1/reports/patient-access", json=REPORT, headers=header),
                client.get(UNKNOWN_EVENT, headers=header),
            ):
                assert_401(response, says)
                assert secret not in response.text
        # Control: the real token, with a lower-case scheme, is accepted.
        accepted = client.post(
            "/v1/events", json={"events": [event([PATIENT])]}, headers={"Authorization": f"bearer {real}"}
        )
    assert accepted.status_code == 200, accepted.text
    assert query(service.settings.database_url, "SELECT count(*) AS n FROM events")[0]["n"] == 1


def test_expired_token_is_401_and_an_unexpired_one_works(service: Service) -> None:
    now = datetime.now(UTC)
    expired = insert(service.settings, Role.EMITTER, ["epic-adt"], now - timedelta(minutes=1))
    current = insert(service.settings, Role.EMITTER, ["epic-adt"], now + timedelta(days=1))
    with service.client(expired) as client:
        response, event_id = post_event(client)
    assert_401(response, "expired")
    assert event_id not in stored_event_ids(service)
    with service.client(current) as client:
        response, event_id = post_event(client)
    assert response.status_code == 200, response.text
    assert event_id in stored_event_ids(service)


def test_each_role_reaches_only_its_endpoints(service: Service) -> None:
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    officer = service.token(Role.PRIVACY_OFFICER)
    auditor = service.token(Role.AUDITOR)
    admin = service.token(Role.ADMIN)
    with service.client(emitter) as client:
        appended, event_id = post_event(client)
        assert appended.status_code == 200, appended.text
        assert_403(client.get(f"/v1/events/{event_id}"), Role.EMITTER)
        assert_403(client.post("/v1/reports/patient-access", json=REPORT), Role.EMITTER)

    refused: list[str] = []
    for token, role in ((officer, Role.PRIVACY_OFFICER), (auditor, Role.AUDITOR), (admin, Role.ADMIN)):
        with service.client(token) as client:
            response, refused_id = post_event(client)
            assert_403(response, role)
            refused.append(refused_id)

    with service.client(auditor) as client:
        read = client.get(f"/v1/events/{event_id}")
        assert read.status_code == 200, read.text
        assert read.json()["record"]["event_id"] == event_id
        assert_403(client.post("/v1/reports/patient-access", json=REPORT), Role.AUDITOR)
    with service.client(admin) as client:
        assert_403(client.get(f"/v1/events/{event_id}"), Role.ADMIN)
        assert_403(client.post("/v1/reports/patient-access", json=REPORT), Role.ADMIN)
    with service.client(officer) as client:
        assert client.get(f"/v1/events/{event_id}").status_code == 200
        report = client.post("/v1/reports/patient-access", json=REPORT)
    assert report.status_code == 200, report.text
    # The report lists the emitted event (and the two audited event reads of this patient).
    assert [e["event_id"] for e in report.json()["events"] if e["event_type"] == "hl7v2-message"] == [event_id]

    stored = stored_event_ids(service)
    assert event_id in stored
    assert not stored & set(refused)
    # Only the emitter's event and the three permitted reads (each audited) are in the log.
    types = [
        r["t"] for r in query(service.settings.database_url, "SELECT record::json->>'event_type' AS t FROM events")
    ]
    assert sorted(types) == ["audit-log-query"] * 3 + ["hl7v2-message"]


def test_emitter_bound_to_two_systems_emits_for_both_and_not_a_third(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt", "cerner-rad"])
    token_id, _ = parts(token)
    with service.client(token) as client:
        epic = client.post("/v1/events", json={"events": [event([PATIENT], source="epic-adt")]})
        cerner = client.post("/v1/events", json={"events": [event([PATIENT], source="cerner-rad")]})
        both = client.post(
            "/v1/events",
            json={"events": [event([PATIENT], source="cerner-rad"), event([PATIENT], source="epic-adt")]},
        )
        third = client.post("/v1/events", json={"events": [event([PATIENT], source="meditech-lab")]})
        mixed = client.post(
            "/v1/events",
            json={"events": [event([PATIENT], source="epic-adt"), event([PATIENT], source="meditech-lab")]},
        )
    for response in (epic, cerner, both):
        assert response.status_code == 200, response.text
    assert third.status_code == 403 and "events[0].source.system_id" in third.json()["detail"]
    assert mixed.status_code == 403 and "events[1].source.system_id" in mixed.json()["detail"]
    rows = query(service.settings.database_url, "SELECT record::json AS r FROM events ORDER BY seq")
    records = [json.loads(row["r"]) for row in rows]
    assert [r["source"]["system_id"] for r in records] == ["epic-adt", "cerner-rad", "cerner-rad", "epic-adt"]
    assert {r["emitter"] for r in records} == {token_id}


def test_cli_emitter_token_needs_a_system(service: Service) -> None:
    result = run_cli(service.settings, "tokens", "create", "--role", "emitter", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "emitter token must be bound to at least one source system (--system)" in message
    assert "asv_" not in result.stdout + result.stderr
    assert query(service.settings.database_url, "SELECT count(*) AS n FROM api_tokens")[0]["n"] == 0


def test_cli_token_lifecycle_create_use_revoke_list_stored_hashed(service: Service) -> None:
    settings = service.settings
    auditor = service.token(Role.AUDITOR)
    created = run_cli(
        settings, "tokens", "create", "--role", "emitter", "--system", "epic-adt", "--name", "ADT feed", "--json"
    )
    assert created.returncode == 0, created.stdout + created.stderr
    token = json.loads(created.stdout)["token"]
    token_id, secret = parts(token)

    with service.client(token) as client:
        accepted, event_id = post_event(client)
    assert accepted.status_code == 200, accepted.text
    assert event_id in stored_event_ids(service)

    revoked = run_cli(settings, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    with service.client(token) as client:
        response, refused_id = post_event(client)
    assert_401(response, "revoked")
    assert refused_id not in stored_event_ids(service)

    listed = run_cli(settings, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    output = listed.stdout + listed.stderr
    auditor_id, auditor_secret = parts(auditor)
    for full, secret_part in ((token, secret), (auditor, auditor_secret)):
        assert full not in output and secret_part not in output
    states = {t["token_id"]: t for t in json.loads(listed.stdout)}
    assert set(states) == {token_id, auditor_id}
    assert states[token_id]["state"] == "revoked"
    assert states[token_id]["role"] == "emitter" and states[token_id]["systems"] == ["epic-adt"]
    assert states[token_id]["name"] == "ADT feed"
    assert states[auditor_id]["state"] == "active"
    assert not any("secret" in key for t in states.values() for key in t)

    # Only a keyed hash is stored: neither the token nor its secret, in any encoding at hand.
    rows = query(settings.database_url, "SELECT * FROM api_tokens")
    assert len(rows) == 2
    dump = repr([dict(r) for r in rows])
    raw = b"".join(v for r in rows for v in r.values() if isinstance(v, bytes))
    for full, secret_part in ((token, secret), (auditor, auditor_secret)):
        assert full not in dump and secret_part not in dump
        assert secret_part.encode() not in raw
    assert all(len(r["secret_hmac"]) == 32 for r in rows)


def test_cli_expiry_is_set_at_creation_and_takes_effect_without_revocation(service: Service) -> None:
    settings = service.settings
    past = run_cli(settings, "tokens", "create", "--role", "auditor", "--expires-at", "2020-01-01")
    both = run_cli(
        settings, "tokens", "create", "--role", "auditor", "--expires-in-days", "1", "--expires-at", "2099-01-01"
    )
    for refused in (past, both):
        assert refused.returncode == 2 and "asv_" not in refused.stdout + refused.stderr
    # An hour ahead; then the service's clock is moved past it, and it lapses on its own.
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    at = soon.strftime("%Y-%m-%dT%H:%M:%S%z")
    created = run_cli(settings, "tokens", "create", "--role", "auditor", "--expires-at", at, "--json")
    assert created.returncode == 0, created.stdout + created.stderr
    answer = json.loads(created.stdout)
    assert datetime.fromisoformat(answer["expires_at"]) == soon
    with service.client(answer["token"]) as client:
        assert client.get("/v1/checkpoints/verifier-key").status_code == 200
        listed = {t["token_id"]: t for t in json.loads(run_cli(settings, "tokens", "list", "--json").stdout)}
        assert datetime.fromisoformat(listed[answer["token_id"]]["expires_at"]) == soon
        access = service.app.state.access_control
        access.now = lambda: soon - timedelta(seconds=1)
        assert client.get("/v1/checkpoints/verifier-key").status_code == 200
        access.now = lambda: soon
        assert_401(client.get("/v1/checkpoints/verifier-key"), "expired")
