"""Alerts: a new pair fires once (however many appenders and passes race),
uncovered flows, expiring BAAs and silent systems are raised, each alert and
its acknowledgement is a chain event, and the webhook receives a signed,
PHI-free body, retried with backoff against a real loopback server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from auditsvc.domain.alerts import AlertConfig, AlertWatcher, deliver_due, raise_alerts
from auditsvc.domain.tokens import Role
from auditsvc.runtime import AuditLog, open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import TEST_SECRET_KEY, Service, _admin, _with_database, event, query, running_service

NOW = datetime.now(UTC)
MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
SECRET = b"webhook-test-secret"


def at(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


@dataclass
class World:
    service: Service
    officer: httpx.Client
    emitter: str
    url: str


@pytest.fixture(scope="module")
def world(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    settings = Settings(
        database_url=_with_database(server_url, name),
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path_factory.mktemp("alerts") / "data",
        log_name="test.auditsvc.local/log",
    )
    try:
        with running_service(settings) as service:
            emitter = service.token(Role.EMITTER, ["epic-adt", "mirth", "old-ris"])
            with service.client(service.token(Role.ADMIN)) as admin:
                admin.put(
                    "/v1/systems/vendor-x",
                    json={"name": "Vendor X", "organization": "X Inc", "relationship": "business_associate",
                          "baa": {"status": "none"}},
                ).raise_for_status()  # fmt: skip
                admin.put(
                    "/v1/systems/cloud-fax",
                    json={"name": "Cloud fax", "organization": "FaxCo", "relationship": "business_associate",
                          "baa": {"status": "on_file", "effective": "2026-01-01",
                                  "expires": (NOW + timedelta(days=12)).date().isoformat()}},
                ).raise_for_status()  # fmt: skip
            with service.client(emitter) as client:
                events = [
                    event([(MRN, f"MRN-ALERT-000{i}")], source=src, destination=dst, occurred_at=at(ago))
                    for i, (src, dst, ago) in enumerate(
                        [
                            ("epic-adt", "vendor-x", timedelta(hours=1)),
                            ("epic-adt", "cloud-fax", timedelta(hours=2)),
                            ("old-ris", "pacs", timedelta(days=3)),
                        ]
                    )
                ]
                client.post("/v1/events", json={"events": events}).raise_for_status()
            with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
                yield World(service, officer, emitter, str(settings.database_url))
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@asynccontextmanager
async def audit_log(world: World) -> AsyncIterator[AuditLog]:
    settings = world.service.settings
    async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
        yield audit


def run(world: World, work: Any) -> Any:
    async def go() -> Any:
        async with audit_log(world) as audit:
            return await work(audit)

    return asyncio.run(go())


def alerts(world: World, status: str = "all") -> list[dict[str, Any]]:
    response = world.officer.get("/v1/alerts", params={"status": status})
    assert response.status_code == 200, response.text
    return response.json()["alerts"]  # type: ignore[no-any-return]


def chain_alerts(world: World, event_type: str = "flow-alert") -> list[dict[str, Any]]:
    rows = query(world.url, "SELECT record FROM events WHERE record::jsonb ->> 'event_type' = $1", event_type)
    return [json.loads(r["record"]) for r in rows]


def test_each_kind_is_raised_once_and_recorded_in_the_chain(world: World) -> None:
    config = AlertConfig()
    raised = run(world, lambda audit: raise_alerts(audit, config))
    kinds = {(a.kind, a.key) for a in raised}
    assert ("new_flow", "epic-adt -> vendor-x") in kinds and ("new_flow", "old-ris -> pacs") in kinds
    assert any(k == "uncovered_flow" and key.startswith("epic-adt -> vendor-x|destination|none|") for k, key in kinds)
    assert ("baa_expiring", f"cloud-fax|{(NOW + timedelta(days=12)).date().isoformat()}") in kinds
    silent = {key.split("|")[0] for k, key in kinds if k == "system_silent"}
    assert silent == {"old-ris", "pacs"}
    assert not any("auditsvc" in key for _, key in kinds)  # the service's own events are no flow
    assert run(world, lambda audit: raise_alerts(audit, config)) == []  # once
    recorded = chain_alerts(world)
    assert sorted(r["attributes"]["alert_id"] for r in recorded) == sorted(str(a.alert_id) for a in raised)
    uncovered = next(r for r in recorded if r["attributes"]["kind"] == "uncovered_flow")
    assert uncovered["source"]["system_id"] == "auditsvc" and uncovered["attributes"]["events"] == 1
    assert "MRN" not in json.dumps(recorded)
    listed = alerts(world, "open")
    assert {a["kind"] for a in listed} == {"new_flow", "uncovered_flow", "baa_expiring", "system_silent"}


def test_a_new_pair_fires_once_under_concurrent_appends_and_passes(world: World) -> None:
    def append(i: int) -> None:
        with world.service.client(world.emitter) as client:
            body = {"events": [event([(MRN, f"MRN-ALERT-1{i:03d}")], source="mirth", destination="new-hie")]}
            client.post("/v1/events", json=body).raise_for_status()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(append, range(12)))

    async def passes(audit: AuditLog) -> list[Any]:
        return list(await asyncio.gather(*(raise_alerts(audit, AlertConfig()) for _ in range(4))))

    results = run(world, passes)
    fired = [a for found in results for a in found if a.key == "mirth -> new-hie"]
    assert len(fired) == 1
    [row] = query(world.url, "SELECT count(*) AS n FROM alerts WHERE alert_key = 'mirth -> new-hie'")
    assert row["n"] == 1
    assert len([r for r in chain_alerts(world) if r["attributes"]["systems"] == "mirth new-hie"]) == 1


def test_acknowledgement_is_recorded_in_the_chain(world: World) -> None:
    run(world, lambda audit: raise_alerts(audit, AlertConfig()))
    target = next(a for a in alerts(world, "open") if a["kind"] == "baa_expiring")
    response = world.officer.post(f"/v1/alerts/{target['alert_id']}/acknowledge", json={"notes": "renewal signed"})
    assert response.status_code == 200, response.text
    acknowledged = response.json()
    assert acknowledged["status"] == "acknowledged" and acknowledged["acknowledged"]["notes"] == "renewal signed"
    [ack] = [
        r for r in chain_alerts(world, "alert-acknowledgement") if r["attributes"]["alert_id"] == target["alert_id"]
    ]
    assert ack["attributes"]["notes"] == "renewal signed" and ack["attributes"]["alert_seq"] == target["raised_seq"]
    assert ack["actor"]["role"] == "privacy_officer"
    assert acknowledged["acknowledged"]["seq"] is not None
    assert target["alert_id"] not in {a["alert_id"] for a in alerts(world, "open")}
    assert target["alert_id"] in {a["alert_id"] for a in alerts(world, "acknowledged")}
    again = world.officer.post(f"/v1/alerts/{target['alert_id']}/acknowledge", json={"notes": "twice"})
    assert again.status_code == 200 and again.json()["acknowledged"]["notes"] == "renewal signed"
    assert len(chain_alerts(world, "alert-acknowledgement")) == 1
    missing = world.officer.post("/v1/alerts/7a1e5b52-0c61-4c4a-8a43-6f9f7d3c0a11/acknowledge", json={})
    assert missing.status_code == 404
    assert world.officer.post("/v1/alerts/not-a-uuid/acknowledge", json={}).status_code == 422
    bad = world.officer.post(f"/v1/alerts/{target['alert_id']}/acknowledge", json={"note": "x"})
    assert bad.status_code == 422 and "note" in bad.text
    assert world.officer.get("/v1/alerts", params={"status": "closed"}).status_code == 422


class Receiver:
    """A loopback webhook: answers the statuses in ``script`` in turn, then 200."""

    def __init__(self, *script: int) -> None:
        self.script = list(script)
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _send_with(audit: AuditLog, config: AlertConfig, moments: list[datetime]) -> list[int]:
    async with httpx.AsyncClient(timeout=5) as client:

        async def send(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
            return await client.post(url, content=body, headers=headers)

        return [await deliver_due(audit, config, send, now=m, rand=lambda: 1.0) for m in moments]


def test_webhook_delivery_is_signed_phi_free_and_retried_with_backoff(world: World) -> None:
    run(world, lambda audit: raise_alerts(audit, AlertConfig()))
    [row] = query(world.url, "SELECT count(*) AS n FROM alerts WHERE delivery = 'pending'")
    pending = int(row["n"])
    assert pending >= 5
    with Receiver(503, 503) as receiver:
        config = replace(AlertConfig(), webhook_url=receiver.url, webhook_secret=SECRET, backoff_base=60)
        now = datetime.now(UTC)
        # The first two answers are 503: retried 60 s later (backoff_base, the jitter drawn at its top), not before.
        moments = [now, now + timedelta(seconds=59), now + timedelta(seconds=61)]
        counts = run(world, lambda audit: _send_with(audit, config, moments))
    assert counts == [pending - 2, 0, 2]
    assert len(receiver.received) == pending + 2
    for headers, body in receiver.received:
        expected = hmac.new(SECRET, f"{headers['x-auditsvc-timestamp']}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["x-auditsvc-signature"] == f"sha256={expected}"
        assert b"MRN" not in body and json.loads(body)["kind"] in {
            "new_flow",
            "uncovered_flow",
            "baa_expiring",
            "system_silent",
        }
    states = query(world.url, "SELECT delivery, max(attempts) AS attempts, count(*) AS n FROM alerts GROUP BY 1")
    assert {r["delivery"]: (r["attempts"], r["n"]) for r in states} == {"delivered": (2, pending)}


def test_an_answer_that_is_no_transient_failure_is_not_retried(world: World) -> None:
    async def fresh(audit: AuditLog) -> Any:
        with world.service.client(world.emitter) as client:
            body = {"events": [event([(MRN, "MRN-ALERT-2001")], source="mirth", destination="refusing-hie")]}
            client.post("/v1/events", json=body).raise_for_status()
        return await raise_alerts(audit, AlertConfig())

    run(world, fresh)
    with Receiver(404, 404) as receiver:
        config = replace(AlertConfig(), webhook_url=receiver.url, webhook_secret=SECRET)
        run(world, lambda audit: _send_with(audit, config, [datetime.now(UTC)]))
    [row] = query(
        world.url, "SELECT delivery, attempts, last_error FROM alerts WHERE alert_key = 'mirth -> refusing-hie'"
    )
    assert (row["delivery"], row["attempts"], row["last_error"]) == ("failed", 1, "HTTP 404")


def test_the_service_raises_alerts_in_the_background(world: World) -> None:
    with world.service.client(world.emitter) as client:
        body = {"events": [event([(MRN, "MRN-ALERT-3001")], source="mirth", destination="watched-hie")]}
        client.post("/v1/events", json=body).raise_for_status()

    async def watch(audit: AuditLog) -> int:
        watcher = AlertWatcher(audit, replace(AlertConfig(), interval=0.05))
        watcher.start()
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline:
                async with audit.engine.connect() as conn:
                    raw = await conn.exec_driver_sql(
                        "SELECT count(*) FROM alerts WHERE alert_key = 'mirth -> watched-hie'"
                    )
                    found = int(raw.scalar_one())
                if found:
                    return found
                await asyncio.sleep(0.05)
            return 0
        finally:
            await watcher.stop()

    assert run(world, watch) == 1


def test_a_webhook_is_configured_signed_and_over_https_in_production() -> None:
    base = {"secret_key": TEST_SECRET_KEY, "alert_webhook_url": "https://hooks.example.org/auditsvc"}
    with pytest.raises(ValueError, match="needs AUDITSVC_ALERT_WEBHOOK_SECRET"):
        Settings(**base)
    with pytest.raises(ValueError, match="requires an https://"):
        Settings(
            **{
                **base,
                "alert_webhook_url": "http://hooks.example.org/a",
                "alert_webhook_secret": "s",
                "env": "production",
            }
        )
    config = AlertConfig.from_settings(Settings(**base, alert_webhook_secret="s3cret"))
    assert (config.webhook_url, config.webhook_secret) == ("https://hooks.example.org/auditsvc", b"s3cret")
