"""Signing in and out of the console in Chromium; idle logoff; a role refused."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import Console, shot, sign_in


def test_sign_in_shows_home_with_the_pages_of_the_role_and_sign_out_ends_it(page: Page, console: Console) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    shot(page, "signin")
    sign_in(page, console, Role.PRIVACY_OFFICER)
    expect(page.get_by_role("heading", name="Privacy console")).to_be_visible()
    expect(page.get_by_role("navigation", name="Pages").get_by_role("link", name="Patient")).to_be_visible()
    shot(page, "home-privacy-officer")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin\?ended=signed-out$"))
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_a_wrong_token_is_refused_with_a_clear_message(page: Page, console: Console) -> None:
    page.goto("/signin")
    page.get_by_label("Token").fill("asv_0123456789abcdef_" + "A" * 43)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused: invalid bearer token")
    page.problems.clear()  # type: ignore[attr-defined]  # the 401 answer itself is logged by Chromium


def test_an_auditor_is_refused_the_patient_page_naming_the_role(page: Page, console: Console) -> None:
    sign_in(page, console, Role.AUDITOR)
    expect(page.get_by_role("navigation", name="Pages").get_by_role("link", name="Patient")).to_have_count(0)
    page.goto("/patient")
    expect(page.get_by_role("heading", name="Not available to your role")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("needs the role privacy_officer")
    shot(page, "refused-auditor")
    page.problems.clear()  # type: ignore[attr-defined]  # Chromium logs the 403 answer


def test_idle_logoff_warns_stay_keeps_the_session_then_signs_out(page: Page, console: Console) -> None:
    config = console.service.app.state.console
    usual = config.idle
    config.idle = timedelta(seconds=4)
    try:
        sign_in(page, console, Role.PRIVACY_OFFICER)
        expect(page.locator("#idle-warning")).to_be_visible(timeout=10_000)
        shot(page, "idle-warning")
        # "Stay signed in" is activity: the server's idle clock starts again too.
        page.get_by_role("button", name="Stay signed in").click()
        expect(page.locator("#idle-warning")).to_be_hidden()
        expect(page).to_have_url(f"{console.url}/")
        expect(page.locator("#idle-warning")).to_be_visible(timeout=10_000)
        page.wait_for_url(re.compile(r"/signin\?ended=idle$"), timeout=15_000)
        expect(page.get_by_role("status")).to_contain_text("signed out after 4 seconds without activity")
    finally:
        config.idle = usual
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))
