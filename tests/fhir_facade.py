"""Shared fixtures of the FHIR facade tests (tests/test_fhir_facade_*.py):
one migrated database per module and the API in process (httpx over ASGI,
lifespan run), with a token per role."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from auditsvc.api.app import create_app
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import TEST_SECRET_KEY, _admin, _with_database, event, make_token


@dataclass
class Facade:
    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def module_settings(server_url: str, template_db: str, tmp: Path) -> Iterator[Settings]:
    """A fresh database copied from the template for one module, dropped after it."""
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        yield Settings(
            database_url=_with_database(server_url, name),
            secret_key=TEST_SECRET_KEY,
            data_dir=tmp / "data",
            log_name="test.auditsvc.local/log",
        )
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def role_tokens(settings: Settings) -> dict[Role, str]:
    """One API token per role (the emitter's bound to epic-adt and lab-lis)."""
    return {
        role: make_token(settings, role, ["epic-adt", "lab-lis"] if role is Role.EMITTER else None) for role in Role
    }


@asynccontextmanager
async def facade(settings: Settings, tokens: dict[Role, str], app: FastAPI | None = None) -> AsyncIterator[Facade]:
    """The API in process over ``settings`` (``app`` if the test built its own)."""
    app = app or create_app(settings, runtime_url(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://facade.test") as http:
            yield Facade(settings, app, http, tokens)


# --- a small synthetic log ------------------------------------------------------------

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
EMPI = "urn:oid:2.16.840.1.113883.3.1234.9.9"
P1_MRN = (MRN, "MRN-FHIR-0001")
P1_EMPI = (EMPI, "EMPI-FHIR-0001")
P2_MRN = (MRN, "MRN-FHIR-0002")
P3_MRN = (MRN, "MRN-FHIR-0003")
P4_MRN = (MRN, "MRN-FHIR-0004")  # many events, for paging
SOURCES = ["epic-adt", "epic-fhir", "lab-lis", "query-hub"]
P4_EVENTS = 23


def seed_events() -> dict[str, dict[str, Any]]:
    """The log the search tests read: named events, then P4's many."""
    named = {
        "e1": event([P1_MRN], occurred_at="2026-11-24T09:30:00Z"),
        "e2": event(
            [P1_MRN, P1_EMPI],
            source="epic-fhir",
            destination="patient-app",
            occurred_at="2026-11-24T10:00:30.250000Z",
            event_type="fhir-rest",
            actor={"id": "dr-1", "type": "user", "role": "physician", "name": "Dr One"},
            purpose_of_use="TREAT",
            data_elements=["Observation", "Patient.name"],
        ),
        "e3": event(
            [P1_EMPI],
            destination="state-registry",
            occurred_at="2026-11-25T08:00:00Z",
            event_type="disclosure",
            purpose_of_use="PUBHLTH",
        ),
        "e4": event(
            [P2_MRN],
            source="lab-lis",
            destination="epic-fhir",
            occurred_at="2026-11-25T09:00:00Z",
            event_type="fhir-rest",
            action="C",
            outcome=4,
        ),
        "e5": event(
            [P2_MRN],
            source="epic-fhir",
            destination="ed-app",
            occurred_at="2026-11-26T23:30:00-05:00",
            event_type="break-glass",
            purpose_of_use="ETREAT",
            actor={"id": "nurse-7", "type": "user"},
        ),
        "e6": event(
            [P3_MRN],
            source="query-hub",
            destination="lab-lis",
            occurred_at="2026-12-01T12:00:00Z",
            event_type="query",
            action="E",
        ),
    }
    bulk = {
        f"p4-{i}": event([P4_MRN], occurred_at=f"2026-11-27T10:{i:02d}:00Z", source="lab-lis") for i in range(P4_EVENTS)
    }
    return named | bulk


def emitter_token(settings: Settings) -> str:
    return make_token(settings, Role.EMITTER, SOURCES)


def bundle_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((li["url"] for li in bundle.get("link", []) if li["relation"] == relation), None)
