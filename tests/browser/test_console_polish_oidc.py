"""Signing in through the organisation's identity provider in Chromium:
the button on the sign-in page, the redirect to the loopback provider
(tests/idp.py) under the console's Content Security Policy, the callback and
the session; nothing of the exchange left in the history's URLs but the
provider's one-time code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import Browser, expect

from ..conftest import Service
from ..console_support import module_service
from ..idp import AUDIENCE, ISSUER, Key, OidcProvider
from .conftest import _CSP_WATCH, Console, off_loop


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(Key.ec("browser-oidc")).running() as running:
        yield running


@pytest.fixture(scope="module")
def oidc_service(
    console: Console,  # first: the package's service (and database) before Playwright's loop starts
    server_url: str,
    template_db: str,
    tmp_path_factory: pytest.TempPathFactory,
    provider: OidcProvider,
) -> Iterator[Service]:
    # Made and dropped off Playwright's event loop (the database helpers run their own).
    with ExitStack() as stack:
        made = module_service(
            server_url,
            template_db,
            tmp_path_factory.mktemp("browser-oidc") / "data",
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=f"{provider.url}/certs",
            oidc_discovery_url=f"{provider.url}/.well-known/openid-configuration",
        )
        service = off_loop(stack.enter_context, made)
        try:
            yield service
        finally:
            off_loop(stack.close)


def test_sign_in_with_your_organisation_in_chromium(oidc_service: Service, browser: Browser) -> None:
    context = browser.new_context(base_url=oidc_service.url, locale="en-US", timezone_id="America/Chicago")
    problems: list[str] = []
    context.expose_function("__reportCsp", lambda text: problems.append(f"CSP violation: {text}"))
    context.add_init_script(_CSP_WATCH)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    visited: list[str] = []
    page.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
    try:
        page.goto("/signin")
        page.get_by_role("button", name="Sign in with your organisation").click()
        # Chromium applies form-action to the redirect: the page's policy must name the provider.
        page.wait_for_url(f"{oidc_service.url}/", timeout=10_000)
        expect(page.get_by_role("banner")).to_contain_text("j.okafor")
        expect(page.get_by_role("navigation", name="Pages").get_by_role("link", name="Patient")).to_be_visible()
        # The browser went to the provider and came back with a code and state only.
        assert any(re.match(r"http://127\.0\.0\.1:\d+/authorize\?", url) for url in visited), visited
        callbacks = [url for url in visited if "/signin/oidc/callback" in url]
        assert len(callbacks) == 1 and set(re.findall(r"[?&](\w+)=", callbacks[0])) <= {"code", "state", "iss"}
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/signin"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/signin"))
    finally:
        context.close()
    assert not problems, problems
