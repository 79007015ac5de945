"""The break-glass review queue in Chromium: the seeded emergency access is
waiting, a privacy officer reviews it, the review is in the chain with the
seq the page shows; an auditor is refused."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import Console, shot, sign_in


def test_review_a_break_glass_access_and_find_the_review_in_the_chain(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Break-glass").click()
    expect(page.get_by_role("heading", name="Break-glass review queue")).to_be_visible()
    access = page.locator("article.queue-item").filter(has_text="Dr Synthetic Emergency")
    expect(access).to_have_count(1)
    expect(access).to_contain_text("epic-adt → ed-tracker")
    expect(access).to_contain_text("E-SYN-7731")
    shot(page, "break-glass-queue")
    event_id = access.locator("input[name=event_id]").get_attribute("value")
    access.get_by_label("Appropriate", exact=True).check()
    access.get_by_label("Notes").fill("Synthetic review: ED physician, patient in resuscitation bay.")
    access.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("heading", name="Review recorded")).to_be_visible()
    status = page.get_by_role("status").filter(has_text="chain seq")
    seq = int(re.search(r"chain seq (\d+)", status.inner_text()).group(1))  # type: ignore[union-attr]
    review_id = page.locator(".success .mono").nth(1).inner_text()
    shot(page, "break-glass-reviewed")
    # In the chain: the review event, at that seq, naming the access and the verdict.
    officer = console.service.client(console.tokens[Role.PRIVACY_OFFICER])
    stored = officer.get(f"/v1/events/{review_id}").json()
    assert stored["seq"] == seq
    assert stored["record"]["event_type"] == "break-glass-review"
    assert stored["record"]["data_elements"] == [f"AuditEvent/{event_id}"]
    assert stored["record"]["attributes"]["verdict"] == "appropriate"
    # The access has left the unreviewed tab and shows under reviewed, with its verdict.
    page.goto("/break-glass")
    expect(page.locator("article.queue-item").filter(has_text="Dr Synthetic Emergency")).to_have_count(0)
    page.get_by_role("link", name="Reviewed", exact=True).click()
    reviewed = page.locator("article.queue-item").filter(has_text="Dr Synthetic Emergency")
    expect(reviewed.locator(".tag.verdict-appropriate").first).to_be_visible()
    expect(reviewed).to_contain_text(f"seq {seq}")
    # From the access to the patient's whole report (the identifier posted, never in the URL).
    reviewed.get_by_role("button", name="Patient access report").click()
    expect(page.get_by_role("heading", name="Patient access report")).to_be_visible()
    expect(page.locator("#main")).to_contain_text("MRN-SYN-000451")  # linked to the access's EMPI id
    assert all("E-SYN-7731" not in url for url in page.visited)  # type: ignore[attr-defined]


def test_a_review_without_a_verdict_is_refused_naming_the_field(page: Page, console: Console) -> None:
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto("/break-glass?status=all")
    form = page.locator("form.review-form").first
    form.evaluate("f => f.querySelectorAll('input[name=verdict]').forEach(i => i.removeAttribute('required'))")
    form.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("alert")).to_contain_text("verdict")
    page.problems.clear()  # type: ignore[attr-defined]  # Chromium logs the 422 answer
