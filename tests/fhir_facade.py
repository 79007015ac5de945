"""Shared fixtures of the FHIR facade tests (tests/test_fhir_facade_*.py):
one migrated database per module and the API in process (httpx over ASGI,
lifespan run), with a token per role."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from auditsvc.api.app import create_app
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import TEST_SECRET_KEY, _admin, _with_database, make_token


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
