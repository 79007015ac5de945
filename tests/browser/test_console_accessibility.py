"""Every console page checked with axe-core (WCAG 2.0/2.1, levels A and AA)
in Chromium, as each role sees it, after the page's own script has run."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from auditsvc.domain.tokens import Role

from .conftest import MRN, SEED, Console, sign_in

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
AXE = Axe()

PAGES: dict[Role, list[str]] = {
    Role.PRIVACY_OFFICER: [
        "/",
        "/patient",
        "/system",
        "/actor",
        "/accounting",
        "/break-glass",
        "/break-glass?status=all",
        "/coverage",
        "/flows",
        "/activity",
        f"/events/{SEED[0]['event_id']}",
    ],
    Role.AUDITOR: ["/auditor", "/coverage", "/activity"],
    Role.ADMIN: ["/admin", "/auditor", "/quarantine"],
}


def violations(page: Page) -> list[dict[str, Any]]:
    return list(AXE.run(page, options=WCAG).response["violations"])


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        targets = [", ".join(node["target"]) for node in v["nodes"][:3]]
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return "\n".join(lines)


@pytest.mark.parametrize("role", list(PAGES), ids=lambda r: r.value)
def test_every_page_passes_axe_for_wcag_2_1_a_and_aa(page: Page, console: Console, role: Role) -> None:
    sign_in(page, console, role)
    problems = {}
    for path in PAGES[role]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found = violations(page)
        if found:
            problems[path] = describe(found)
    assert not problems, "\n".join(f"{path}:\n{text}" for path, text in problems.items())


def test_the_patient_report_and_the_signin_page_pass_axe(page: Page, console: Console) -> None:
    page.goto("/signin")
    assert not (found := violations(page)), describe(found)
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto("/patient")
    page.get_by_label("Identifier system").fill(MRN[0])
    page.get_by_label("Identifier value").fill(MRN[1])
    page.get_by_role("button", name="Show the report").click()
    page.get_by_role("heading", name="Patient access report").wait_for()
    assert not (found := violations(page)), describe(found)


def test_the_check_finds_an_unlabelled_field(page: Page, console: Console) -> None:
    # The check itself: axe ran with the WCAG rules and sees a field without a label.
    page.goto("/signin")
    page.evaluate("document.querySelector('main, body').appendChild(document.createElement('input'))")
    assert [v["id"] for v in violations(page)] == ["label"]
