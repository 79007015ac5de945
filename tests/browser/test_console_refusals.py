"""Each role is refused the pages it may not see, with a page naming the role
needed (one sign-in per role), and does not see them in its navigation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import Console, sign_in

REFUSED = {
    Role.PRIVACY_OFFICER: {"/auditor": "auditor or admin", "/admin": "admin", "/quarantine": "admin"},
    Role.AUDITOR: {
        "/system": "privacy_officer",
        "/actor": "privacy_officer",
        "/accounting": "privacy_officer",
        "/break-glass": "privacy_officer",
        "/admin": "admin",
    },
    Role.ADMIN: {
        "/coverage": "privacy_officer or auditor",
        "/activity": "privacy_officer or auditor",
        "/system": "privacy_officer",
    },
}


@pytest.mark.parametrize("role", list(REFUSED), ids=lambda r: r.value)
def test_a_role_is_refused_the_pages_of_others(page: Page, console: Console, role: Role) -> None:
    sign_in(page, console, role)
    nav = page.get_by_role("navigation", name="Pages")
    for path, needed in REFUSED[role].items():
        expect(nav.locator(f'a[href="{path}"]')).to_have_count(0)
        page.goto(path)
        expect(page.get_by_role("heading", name="Not available to your role")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text(f"needs the role {needed}")
    page.problems.clear()  # type: ignore[attr-defined]  # Chromium logs each 403 answer
