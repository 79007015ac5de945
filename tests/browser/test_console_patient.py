"""The patient page in Chromium: search by a linked identifier, the systems
and the chart, filters, an event, CSV and PDF downloads checked, no PHI in
any URL the browser requested, CSRF refusal; times in the user's zone."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import unquote

from playwright.sync_api import Page, expect
from pypdf import PdfReader

from auditsvc.domain.tokens import Role

from .conftest import EMPI, MRN, OTHER, SEED, Console, shot, sign_in

PHI = (MRN[1], EMPI[1], OTHER[1])


def search_patient(page: Page, identifier: tuple[str, str]) -> None:
    page.goto("/patient")
    page.get_by_label("Identifier system").fill(identifier[0])
    page.get_by_label("Identifier value").fill(identifier[1])
    page.get_by_role("button", name="Show the report").click()
    page.wait_for_url(re.compile(r"/patient/r/[A-Za-z0-9_-]+$"))


def assert_no_phi_in_urls(page: Page, console: Console, served: str = "/patient/r/") -> None:
    """Neither the URLs the browser requested nor the server's access log
    name the patient (the log holds ``served``: it is being captured)."""
    visited = [unquote(url) for url in page.visited]  # type: ignore[attr-defined]
    logged = [unquote(line) for line in console.access_log]
    assert visited and any(served in line for line in logged)
    for line in visited + logged:
        assert not any(value in line for value in PHI), line


def test_a_patient_found_by_a_linked_identifier_with_systems_chart_filters_and_an_event(
    page: Page, console: Console
) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    search_patient(page, EMPI)  # the EMPI id; the MRN's accesses come too
    shot(page, "patient-report")
    ids = page.get_by_role("region", name="Identifiers linked to this patient")
    expect(ids).to_contain_text(MRN[1])
    expect(ids).to_contain_text(EMPI[1])
    systems = page.get_by_role("table").filter(has_text="A system counts an event once")
    for system in ("epic-adt", "lab-lis", "radiology-ris", "fhir-gateway", "ed-tracker", "billing-app"):
        expect(systems.get_by_role("rowheader", name=system, exact=True)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Accesses per system per day"))).to_be_visible()
    # Times are shown in the browser's zone (America/Chicago), UTC on hover.
    first = page.locator("time[datetime]").first
    expect(first).to_have_attribute("title", re.compile(r"UTC$"))
    expect(first).to_contain_text(re.compile(r"C[SD]T"))
    # Sorting the systems table by name, from the keyboard.
    systems.get_by_role("link", name="System", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=system"))
    names = systems.get_by_role("rowheader").all_inner_texts()
    assert names == sorted(names) and "billing-app" in names
    systems.get_by_role("link", name="System", exact=True).press("Enter")  # again: descending
    expect(page).to_have_url(re.compile(r"dir=desc"))
    assert systems.get_by_role("rowheader").all_inner_texts() == sorted(names, reverse=True)
    # Filter: break-glass accesses only.
    page.get_by_label("Break-glass only").check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"break_glass=1"))
    accesses = page.get_by_role("table").filter(has_text="In time order")
    expect(accesses.get_by_role("row")).to_have_count(2)  # the header and the one access
    expect(accesses).to_contain_text("Dr Synthetic Emergency")
    shot(page, "patient-report-break-glass")
    # The access in detail.
    accesses.get_by_role("link", name=re.compile("^Details")).click()
    expect(page.get_by_role("heading", name="Access record")).to_be_visible()
    expect(page.locator("dl.record").first).to_contain_text("ETREAT")
    expect(page.get_by_text("Chain hash")).to_be_visible()
    shot(page, "event")
    page.get_by_role("link", name="Back to the report").click()
    expect(page.get_by_role("heading", name="Patient access report")).to_be_visible()
    assert_no_phi_in_urls(page, console)


def test_csv_and_pdf_downloads_hold_the_patients_accesses(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    search_patient(page, MRN)
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(csv_download.value.path().read_text(encoding="utf-8"))))
    seeded = {str(e["event_id"]) for e in SEED if OTHER[1] not in str(e["patient"])}
    assert seeded <= {r["event_id"] for r in rows}
    assert not any(OTHER[1] in r["patient_identifiers"] for r in rows)
    with page.expect_download() as pdf_download:
        page.get_by_role("link", name="Download PDF").click()
    reader = PdfReader(pdf_download.value.path())
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "ed-tracker" in text and "radiology-ris" in text and MRN[1] in text
    assert_no_phi_in_urls(page, console)


def test_a_search_form_posted_without_its_csrf_token_is_refused(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto("/patient")
    page.locator('form[action="/patient"] input[name="csrf_token"]').evaluate("el => el.remove()")
    page.get_by_label("Identifier system").fill(MRN[0])
    page.get_by_label("Identifier value").fill(MRN[1])
    page.get_by_role("button", name="Show the report").click()
    expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("no CSRF token")
    page.problems.clear()  # type: ignore[attr-defined]  # Chromium logs the 403 answer
    assert_no_phi_in_urls(page, console, served="POST /patient ")
