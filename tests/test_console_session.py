"""The console's sessions: sign-in by token, the role guard, CSRF, idle and
absolute timeouts, sign-out, revocation, the Content Security Policy; and
that sign-ins and sign-outs are events in the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from auditsvc.domain.tokens import Role

from .conftest import Service, query
from .console_support import NONCE, csrf_of, module_service, sign_in, token

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def service(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with module_service(server_url, template_db, tmp_path_factory.mktemp("console") / "data") as running:
        yield running


def console_events(service: Service, event_type: str) -> list[dict[str, object]]:
    rows = query(
        str(service.settings.database_url),
        "SELECT f.actor_id, f.outcome, e.record FROM event_facts f JOIN events e USING (log_id, seq) "
        "WHERE f.event_type = $1 ORDER BY f.seq",
        event_type,
    )
    return [dict(r) for r in rows]


def test_the_root_sends_a_stranger_to_sign_in_and_the_api_keeps_its_json(service: Service) -> None:
    answer = httpx.get(f"{service.url}/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    page = httpx.get(f"{service.url}/signin")
    assert page.status_code == 200 and "<form" in page.text and 'type="password"' in page.text
    assert httpx.get(f"{service.url}/v1/events/not-a-uuid").headers["content-type"].startswith("application/json")


def test_console_pages_get_a_strict_policy_and_the_api_its_own(service: Service) -> None:
    page = httpx.get(f"{service.url}/signin")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "form-action 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline for the policy to block
    api = httpx.get(f"{service.url}/healthz")
    assert api.headers["content-security-policy"].startswith("default-src 'none'; frame-ancestors 'none'")
    for asset in ("/static/console.css", "/static/console.js"):
        assert httpx.get(f"{service.url}{asset}").status_code == 200


def test_a_privacy_officer_signs_in_sees_home_and_the_sign_in_is_in_the_chain(service: Service) -> None:
    officer = token(service, Role.PRIVACY_OFFICER, name="Pat Officer (synthetic)")
    client, answer = sign_in(service, officer)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert officer not in cookie
    home = client.get("/")
    assert home.status_code == 200 and "Pat Officer (synthetic)" in home.text and 'href="/patient"' in home.text
    token_id = officer.split("_")[1]
    assert any(e["actor_id"] == token_id for e in console_events(service, "console-sign-in"))
    # The session row keeps a hash of the cookie, never the cookie or the token.
    rows = query(str(service.settings.database_url), "SELECT * FROM console_sessions WHERE caller_id = $1", token_id)
    assert (
        len(rows) == 1
        and officer not in str(dict(rows[0]))
        and client.cookies["auditsvc-console"] not in str(dict(rows[0]))
    )


def test_an_emitter_or_a_wrong_token_is_refused_with_a_reason_and_recorded(service: Service) -> None:
    emitter = token(service, Role.EMITTER, systems=["epic-adt"])
    _, answer = sign_in(service, emitter)
    assert answer.status_code == 403 and "Emitter tokens are for systems" in answer.text
    _, wrong = sign_in(service, emitter[:-4] + "AAAA")
    assert wrong.status_code == 401 and "invalid bearer token" in wrong.text
    refused = console_events(service, "console-sign-in-refused")
    assert {e["actor_id"] for e in refused} >= {emitter.split("_")[1]}
    assert all(e["outcome"] == 4 for e in refused)
    assert emitter not in str(refused)


def test_a_role_that_may_not_see_a_page_is_told_which_role_it_needs(service: Service) -> None:
    client, _ = sign_in(service, token(service, Role.AUDITOR))
    page = client.get("/patient")
    assert page.status_code == 403
    assert "needs the role privacy_officer" in page.text and "signed in as auditor" in page.text


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(service: Service) -> None:
    client, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    csrf = csrf_of(client.get("/"))
    missing = client.post("/signout", data={})
    assert missing.status_code == 403 and "no CSRF token" in missing.text
    wrong = client.post("/signout", data={"csrf_token": "x" * 43})
    assert wrong.status_code == 403
    foreign = client.post("/signout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Origin" in foreign.text
    cross = client.post("/signout", data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert client.get("/").status_code == 200  # none of them signed the user out


def test_sign_in_form_needs_its_own_nonce(service: Service) -> None:
    client = httpx.Client(base_url=service.url, headers={"Origin": service.url})
    answer = client.post("/signin", data={"signin_nonce": "guess", "token": token(service, Role.AUDITOR)})
    assert answer.status_code == 403


def test_sign_out_ends_the_session_for_good_and_is_recorded(service: Service) -> None:
    officer = token(service, Role.PRIVACY_OFFICER)
    client, _ = sign_in(service, officer)
    cookie = client.cookies["auditsvc-console"]
    answer = client.post("/signout", data={"csrf_token": csrf_of(client.get("/"))})
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?ended=signed-out"
    assert "You are signed out" in client.get("/signin?ended=signed-out").text
    replay = httpx.get(f"{service.url}/", cookies={"auditsvc-console": cookie})
    assert replay.status_code == 303 and replay.headers["location"] == "/signin?ended=signed-out"
    assert any(e["actor_id"] == officer.split("_")[1] for e in console_events(service, "console-sign-out"))


def test_signing_in_again_ends_the_browsers_previous_session_and_forgets_its_searches(
    service: Service,
) -> None:
    officer = token(service, Role.PRIVACY_OFFICER)
    client, _ = sign_in(service, officer)
    first = client.cookies["auditsvc-console"]
    page = client.get("/patient")
    client.post("/patient", data={"csrf_token": csrf_of(page), "system": "urn:test:mrn", "value": "MRN-SYN-1"})
    url = str(service.settings.database_url)
    mine = (
        "SELECT count(*) AS n FROM console_searches s JOIN console_sessions c USING (session_hash) "
        "WHERE c.caller_id = $1"
    )
    assert query(url, mine, officer.split("_")[1])[0]["n"] == 1
    nonce = NONCE.search(client.get("/signin").text)
    assert nonce is not None
    client.post("/signin", data={"signin_nonce": nonce.group(1), "token": token(service, Role.AUDITOR)})
    assert client.cookies["auditsvc-console"] != first
    replay = httpx.get(f"{service.url}/", cookies={"auditsvc-console": first})
    assert replay.status_code == 303 and replay.headers["location"] == "/signin?ended=signed-out"
    assert query(url, mine, officer.split("_")[1])[0]["n"] == 0


def test_an_idle_session_is_signed_out_and_says_so(service: Service) -> None:
    config = service.app.state.console
    client, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    assert client.get("/").status_code == 200
    real_now = config.now
    later = real_now() + config.idle + timedelta(seconds=1)
    config.now = lambda: later
    try:
        answer = client.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/signin?ended=idle"
        notice = client.get("/signin?ended=idle").text
        assert "signed out after 15 minutes without activity" in notice
    finally:
        config.now = real_now
    assert client.get("/").status_code == 303  # ended for good, even back in time


def test_activity_keeps_a_session_alive_but_not_past_its_lifetime(service: Service) -> None:
    config = service.app.state.console
    client, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    real_now = config.now
    start = real_now()
    try:
        step = config.idle / 2
        moment = start
        while moment + step < start + config.lifetime:
            moment += step
            config.now = lambda m=moment: m
            assert client.get("/session/ping").status_code == 204
        config.now = lambda: start + config.lifetime
        answer = client.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/signin?ended=expired"
    finally:
        config.now = real_now


def test_revoking_the_token_ends_its_console_session(service: Service) -> None:
    officer = token(service, Role.PRIVACY_OFFICER)
    client, _ = sign_in(service, officer)
    assert client.get("/").status_code == 200
    query(
        str(service.settings.database_url),
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1",
        officer.split("_")[1],
    )
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?ended=revoked"


def test_unknown_console_paths_are_a_page_and_api_paths_stay_json(service: Service) -> None:
    page = httpx.get(f"{service.url}/no/such/page")
    assert page.status_code == 404 and "Page not found" in page.text
    api = httpx.get(f"{service.url}/v1/no/such")
    assert api.status_code == 404 and api.json()["detail"]


def test_an_unexpected_failure_on_a_console_page_is_a_page_that_names_nothing(service: Service) -> None:
    client, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    config = service.app.state.console
    real_now = config.now

    def broken() -> datetime:
        raise RuntimeError("MRN-SYN-LEAK")

    config.now = broken
    try:
        page = client.get("/")
    finally:
        config.now = real_now
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text and "MRN-SYN-LEAK" not in page.text
    assert "unsafe-inline" not in page.headers["content-security-policy"]
