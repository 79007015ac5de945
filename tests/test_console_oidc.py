"""Signing in to the console through the organisation's identity provider:
authorization code with PKCE, state and nonce, against a loopback provider
(tests/idp.py OidcProvider); and each way it must refuse."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import Service, query
from .console_support import NONCE, module_service
from .idp import AUDIENCE, ISSUER, Key, OidcProvider

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(Key.ec("console-oidc")).running() as running:
        yield running


@pytest.fixture(scope="module")
def service(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider
) -> Iterator[Service]:
    with module_service(
        server_url,
        template_db,
        tmp_path_factory.mktemp("console-oidc") / "data",
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=f"{provider.url}/certs",
        oidc_discovery_url=f"{provider.url}/.well-known/openid-configuration",
    ) as running:
        yield running


def start(service: Service) -> tuple[httpx.Client, str]:
    """The browser's side up to the provider: the redirect it is sent."""
    client = httpx.Client(base_url=service.url, timeout=30, headers={"Origin": service.url})
    page = client.get("/signin")
    assert "Sign in with your organisation" in page.text
    nonce = NONCE.search(page.text)
    assert nonce is not None
    answer = client.post("/signin/oidc", data={"signin_nonce": nonce.group(1)})
    assert answer.status_code == 303
    return client, str(answer.headers["location"])


def at_provider(location: str) -> str:
    """The provider signs the user in and sends the browser back: the callback URL."""
    answer = httpx.get(location)
    assert answer.status_code == 302
    return str(answer.headers["location"])


def test_sign_in_through_the_provider_opens_a_session_and_is_recorded(service: Service, provider: OidcProvider) -> None:
    client, location = start(service)
    params = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{provider.url}/authorize?")
    assert params["code_challenge_method"] == ["S256"] and params["client_id"] == [AUDIENCE]
    assert params["redirect_uri"] == [f"{service.url}/signin/oidc/callback"]
    assert len(params["state"][0]) >= 32 and len(params["nonce"][0]) >= 32 and "openid" in params["scope"][0]
    callback = at_provider(location)
    answer = client.get(callback)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and "j.okafor" in home.text and 'href="/patient"' in home.text
    rows = query(
        str(service.settings.database_url),
        "SELECT e.record::jsonb -> 'attributes' ->> 'method' AS method FROM event_facts f "
        "JOIN events e USING (log_id, seq) WHERE f.event_type = 'console-sign-in' AND f.actor_id = $1",
        "oidc:staff-0042",
    )
    assert [r["method"] for r in rows] == ["oidc"]
    # The code was good once: the same answer replayed is refused by the provider.
    replay = client.get(callback)
    assert replay.status_code in (400, 401)


def test_an_answer_for_another_sign_in_is_refused_by_its_state(service: Service) -> None:
    client, location = start(service)
    callback = at_provider(location)
    forged = callback.replace("state=", "state=x")
    answer = client.get(forged)
    assert answer.status_code == 400 and "(state)" in answer.text
    stranger = httpx.get(callback)  # another browser, without the sign-in's cookie
    assert stranger.status_code == 400 and "auditsvc-console" not in stranger.headers.get("set-cookie", "")


def test_a_code_without_the_sign_ins_pkce_verifier_is_refused(service: Service, provider: OidcProvider) -> None:
    client, location = start(service)
    callback = at_provider(location)
    state, nonce, _verifier = client.cookies["auditsvc-oidc"].split(".")
    client.cookies.set("auditsvc-oidc", f"{state}.{nonce}.{'v' * 64}")
    before = len(provider.refusals)
    answer = client.get(callback)
    assert answer.status_code == 401 and "refused the sign-in code" in answer.text
    assert provider.refusals[before:] == ["token"]


def test_an_id_token_with_another_nonce_is_refused(service: Service) -> None:
    client, location = start(service)
    callback = at_provider(location)
    state, _nonce, verifier = client.cookies["auditsvc-oidc"].split(".")
    client.cookies.set("auditsvc-oidc", f"{state}.{'n' * 32}.{verifier}")
    answer = client.get(callback)
    assert answer.status_code == 401 and "nonce" in answer.text


def test_a_user_without_an_auditsvc_role_is_refused(service: Service, provider: OidcProvider) -> None:
    provider.user = {**provider.user, "roles": ["nurse"]}
    try:
        client, location = start(service)
        answer = client.get(at_provider(location))
    finally:
        provider.user = {**provider.user, "roles": ["privacy_officer"]}
    assert answer.status_code == 401 and "grants no auditsvc role" in answer.text
    assert client.get("/").status_code == 303
