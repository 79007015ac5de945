"""The coverage page and the activity review record in Chromium: silent
systems flagged and sortable, new flows listed; the activity record shows a
report run through the console, without the patient; an admin refused both."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import Console, sign_in


def test_coverage_flags_silent_systems_and_lists_new_flows(page: Page, console: Console) -> None:
    sign_in(page, console, Role.AUDITOR)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Coverage").click()
    systems = page.get_by_role("table", name="systems seen in events or registered")
    # The seeded week ended days before today: every system of it is silent.
    expect(systems.locator("tr", has_text="radiology-ris")).to_contain_text("silent")
    systems.get_by_role("link", name="System", exact=True).click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("System")
    page.get_by_label("New flows from").fill("2026-11-01")
    page.get_by_label("To").fill("2026-11-30")
    page.get_by_role("button", name="Show", exact=True).click()
    flows = page.get_by_role("table", name="Source → destination pairs first seen in the period")
    expect(flows).to_contain_text("pacs-archive")


def test_the_activity_record_shows_what_was_run_without_the_patient(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto("/system?system_id=epic-adt")
    expect(page.get_by_role("table", name="Events")).to_contain_text("MRN-SYN-000451")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Activity").click()
    record = page.get_by_role("table")
    expect(record).to_contain_text("system access report")
    expect(record).to_contain_text("Pat Privacy (synthetic officer)")
    expect(record).not_to_contain_text("MRN-SYN-000451")
