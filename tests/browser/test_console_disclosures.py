"""The accounting of disclosures in Chromium: a synthetic patient's
disclosures to a registered public-health agency and a court, the PDF for
the patient downloaded and read; no identifier in any URL; an auditor refused."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from auditsvc.domain.tokens import Role

from ..conftest import event
from ..console_support import token
from .conftest import Console, off_loop, shot, sign_in

PATIENT = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-SYN-000777")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-SYN-5150")


def _disclosure(when: str, recipient: str, purpose: str, elements: list[str]) -> dict[str, object]:
    body = event(
        [PATIENT, EMPI],
        source="him-release",
        destination=recipient,
        occurred_at=when,
        event_type="disclosure",
        data_elements=elements,
        actor={"id": "him-clerk-7", "type": "user", "role": "HIM"},
    )
    body["purpose_of_use"] = purpose
    return body


@pytest.fixture(scope="module")
def disclosed(console: Console) -> Iterator[Console]:
    emitter = off_loop(token, console.service, Role.EMITTER, None, ["him-release"])
    admin = {"Authorization": f"Bearer {console.tokens[Role.ADMIN]}"}
    for system_id, name, address in (
        ("state-immunization-registry", "State Immunization Registry (synthetic)", "1 Capitol Way, Springfield"),
        ("county-court", "County Court Clerk (synthetic)", "200 Main St, Springfield"),
    ):
        entry = {
            "name": name,
            "address": address,
            "relationship": "external_recipient",
            "baa": {"status": "not_required"},
        }
        httpx.put(f"{console.url}/v1/systems/{system_id}", json=entry, headers=admin, timeout=30).raise_for_status()
    events = [
        _disclosure("2026-03-02T15:00:00Z", "state-immunization-registry", "PUBHLTH", ["Immunization"]),
        _disclosure("2026-06-09T15:00:00Z", "state-immunization-registry", "PUBHLTH", ["Immunization"]),
        _disclosure("2026-08-19T13:30:00Z", "county-court", "JUDICIAL", ["DG1", "OBX"]),
        _disclosure("2026-09-01T10:00:00Z", "cardiology-clinic", "TREAT", ["OBX"]),  # treatment: excluded
    ]
    answer = httpx.post(
        f"{console.url}/v1/events", json={"events": events}, headers={"Authorization": f"Bearer {emitter}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    yield console


def test_the_accounting_lists_the_disclosures_and_its_pdf_says_so(page: Page, disclosed: Console) -> None:
    sign_in(page, disclosed, Role.PRIVACY_OFFICER)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Accounting").click()
    page.get_by_label("Identifier system").fill(PATIENT[0])
    page.get_by_label("Identifier value").fill(PATIENT[1])
    page.get_by_label("Requested on").fill("2026-11-30")
    page.get_by_role("button", name="Show the accounting").click()
    table = page.get_by_role("table")
    expect(table).to_contain_text("State Immunization Registry (synthetic)")
    expect(table).to_contain_text("1 Capitol Way, Springfield")
    expect(table).to_contain_text("County Court Clerk (synthetic)")
    expect(table).not_to_contain_text("cardiology-clinic")  # treatment is excluded, counted below
    expect(page.locator("ul.identifiers")).to_contain_text(EMPI[1])  # every linked identifier
    shot(page, "accounting")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the PDF for the patient").click()
    content = open(download.value.path(), "rb").read()  # noqa: SIM115
    text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages))
    assert "Accounting of disclosures" in text
    assert PATIENT[1] in text and EMPI[1] in text
    assert "State Immunization Registry (synthetic)" in text and "County Court Clerk (synthetic)" in text
    assert "3 disclosures to 2 recipients" in text and "cardiology-clinic" not in text
    assert all(PATIENT[1] not in url and EMPI[1] not in url for url in page.visited)  # type: ignore[attr-defined]


def test_the_accounting_names_exclusions_in_words_sorts_its_entries_and_aligns_its_form(
    page: Page, disclosed: Console
) -> None:
    sign_in(page, disclosed, Role.PRIVACY_OFFICER)
    page.goto("/accounting")
    # The three fields' inputs on one line: the hint under the first pushes none of them.
    tops = {
        round(page.get_by_label(label).bounding_box()["y"])
        for label in ("Identifier system", "Identifier value", "Requested on")
    }  # type: ignore[index]
    assert len(tops) == 1, tops
    page.get_by_label("Identifier system").fill(PATIENT[0])
    page.get_by_label("Identifier value").fill(PATIENT[1])
    page.get_by_label("Requested on").fill("2026-11-30")
    page.get_by_role("button", name="Show the accounting").click()
    expect(page.locator("ul.exclusions")).to_have_text(
        "1 disclosure for treatment, payment or health care operations (§164.528(a)(1)(i))"
    )
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows.first).to_contain_text("State Immunization Registry")  # by date, oldest first
    page.get_by_role("button", name="Recipient").click()
    expect(page.get_by_role("columnheader", name="Recipient")).to_have_attribute("aria-sort", "ascending")
    expect(rows.first).to_contain_text("County Court Clerk")
    page.get_by_role("button", name="Recipient").click()
    expect(page.get_by_role("columnheader", name="Recipient")).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_contain_text("State Immunization Registry")
    assert all(PATIENT[1] not in url for url in page.visited)  # type: ignore[attr-defined]
