"""A running service for the console's tests (tests/test_console_*.py and
tests/browser/): one fresh database per test module, the real API on a
loopback port, tokens of every role, and a signed-in HTTP client.

Module scope keeps the suite fast: a module's tests share one database and
one server, so each test makes its own subjects (patients, tokens) rather
than assuming an empty log.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import TEST_SECRET_KEY, Service, _admin, _with_database, make_token, running_service

NONCE = re.compile(r'name="signin_nonce" value="([^"]+)"')
LOG_NAME = "test.auditsvc.local/log"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def module_service(server_url: str, template_db: str, data_dir: Path, **settings: Any) -> Iterator[Service]:
    """A fresh database copied from the template and the API serving it."""
    name = f"asvc_c_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        config = Settings(
            database_url=_with_database(server_url, name),
            secret_key=TEST_SECRET_KEY,
            data_dir=data_dir,
            log_name=LOG_NAME,
            **settings,
        )
        with running_service(config) as service:
            yield service
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def token(service: Service, role: Role, name: str | None = None, systems: list[str] | None = None) -> str:
    return make_token(service.settings, role, systems, name)


def sign_in(service: Service, credential: str) -> tuple[httpx.Client, httpx.Response]:
    """A browser-like client that went through the sign-in form (same-origin headers)."""
    client = httpx.Client(base_url=service.url, timeout=30, headers={"Origin": service.url})
    form = client.get("/signin")
    nonce = NONCE.search(form.text)
    assert nonce is not None, form.text
    answer = client.post("/signin", data={"signin_nonce": nonce.group(1), "token": credential})
    return client, answer


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)
