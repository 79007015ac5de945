"""The system and actor reports in Chromium: counterparts sortable, events
paged, the CSV of every event downloaded and read; an auditor refused."""

from __future__ import annotations

import csv
import io

from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import SEED, Console, sign_in


def test_the_system_report_shows_counterparts_events_and_exports_csv(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="System").click()
    page.get_by_label("System id").fill("lab-lis")
    page.get_by_label("From").fill("2026-11-01")
    page.get_by_label("To").fill("2026-11-30")
    page.get_by_role("button", name="Show the report").click()
    counterparts = page.get_by_role("table", name="Systems it exchanged PHI with")
    expect(counterparts).to_contain_text("epic-adt")
    # Sorting by system id, with the header marked for assistive technology.
    counterparts.get_by_role("link", name="System").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("System")
    events = page.get_by_role("table", name="Events")
    expect(events).to_contain_text("MRN-SYN-000451")
    shown = events.locator("tbody tr").count()
    lab = [e for e in SEED if "lab-lis" in (e["source"]["system_id"], e["destination"]["system_id"])]
    assert shown == min(len(lab), 50)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download every event (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))  # noqa: SIM115
    assert len(rows) == len(lab)
    assert all("lab-lis" in (r["source_system"], r["destination_system"]) for r in rows)
    assert all("MRN-SYN" not in url and "E-SYN" not in url for url in page.visited)  # type: ignore[attr-defined]


def test_the_actor_report_and_an_unknown_actor(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto("/actor?actor_id=u-rad-0007")
    expect(page.get_by_role("table", name="Events")).to_contain_text("radiology-ris → pacs-archive")
    page.goto("/actor?actor_id=nobody-at-all")
    expect(page.get_by_role("alert")).to_contain_text("unknown actor")
    page.problems.clear()  # type: ignore[attr-defined]  # the refusal is a 422 page
