"""Follow-ups of the console's review in Chromium: a break-glass access's
review state on its event page."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from auditsvc.api.console import pages_admin
from auditsvc.api.console.render import plain_duration
from auditsvc.domain.tokens import Role

from ..conftest import event
from .conftest import EMPI, SEED, Console, sign_in


def test_the_event_page_of_a_break_glass_access_shows_its_review_state(page: Page, console: Console) -> None:
    access = event(
        [EMPI],
        source="epic-adt",
        destination="ed-tracker",
        occurred_at="2026-11-25T03:10:00Z",
        event_type="break-glass",
        purpose_of_use="ETREAT",
        data_elements=["Patient"],
        actor={"id": "u-ed-0077", "type": "user", "role": "physician", "name": "Dr Synthetic Night"},
    )
    emitter = {"Authorization": f"Bearer {console.tokens[Role.EMITTER]}"}
    httpx.post(f"{console.url}/v1/events", json={"events": [access]}, headers=emitter, timeout=30).raise_for_status()
    sign_in(page, console, Role.PRIVACY_OFFICER)
    page.goto(f"/events/{access['event_id']}")
    state = page.locator("#review-state")
    expect(state).to_contain_text("unreviewed")
    expect(page.get_by_role("link", name="Open the break-glass review queue")).to_have_attribute("href", "/break-glass")
    officer = console.service.client(console.tokens[Role.PRIVACY_OFFICER])
    answer = officer.post("/v1/reviews", json={"event_id": access["event_id"], "verdict": "investigate"})
    assert answer.status_code == 201, answer.text
    seq = answer.json()["review"]["seq"]
    page.reload()
    expect(state).to_contain_text("investigate")
    expect(state).to_contain_text("Pat Privacy (synthetic officer)")
    expect(state).to_contain_text(f"seq {seq} in the chain")
    expect(state.locator("time")).to_have_count(1)
    expect(page.get_by_role("link", name="Open the reviewed break-glass accesses")).to_be_visible()


def test_an_ordinary_event_page_has_no_review_section(page: Page, console: Console) -> None:
    sign_in(page, console, Role.AUDITOR)
    page.goto(f"/events/{SEED[0]['event_id']}")
    expect(page.get_by_role("heading", name="Access record")).to_be_visible()
    expect(page.locator("#review-state")).to_have_count(0)


def test_durations_read_as_seconds_below_a_minute_and_whole_minutes_otherwise() -> None:
    assert plain_duration(timedelta(seconds=4)) == "4 seconds"
    assert plain_duration(timedelta(seconds=1)) == "1 second"
    assert plain_duration(timedelta(minutes=1)) == "1 minute"
    assert plain_duration(timedelta(minutes=15)) == "15 minutes"
    assert plain_duration(timedelta(seconds=150)) == "3 minutes"


def test_the_registry_and_the_tokens_are_paged_each_on_its_own(
    page: Page, console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = {"Authorization": f"Bearer {console.tokens[Role.ADMIN]}"}
    for n in range(3):
        entry = {
            "name": f"Paged System {n} (synthetic)",
            "relationship": "workforce",
            "baa": {"status": "not_required"},
        }
        put = httpx.put(f"{console.url}/v1/systems/zz-paged-{n}", json=entry, headers=admin, timeout=30)
        put.raise_for_status()
    monkeypatch.setattr(pages_admin, "PAGE_SIZE", 2)
    sign_in(page, console, Role.ADMIN)
    page.goto("/admin?sort=system_id&dir=desc")
    registry = page.get_by_role("navigation", name="Pages of the registry")
    expect(registry).to_contain_text("Page 1 of")
    expect(page.locator("#registry tbody tr:not(.edit-row)")).to_have_count(2)
    expect(page.locator("#registry tbody tr:not(.edit-row)").first).to_contain_text("zz-paged-2")  # the sort holds
    registry.get_by_role("link", name="Next").click()
    expect(page.get_by_role("navigation", name="Pages of the registry")).to_contain_text("Page 2 of")
    expect(page.locator("#registry tbody tr:not(.edit-row)").first).to_contain_text("zz-paged-0")
    assert "sort=system_id" in page.url and "dir=desc" in page.url
    tokens = page.get_by_role("navigation", name="Pages of the tokens")
    expect(tokens).to_contain_text("Page 1 of")  # its own page: the registry's did not move it
    expect(page.locator("#tokens tbody tr")).to_have_count(2)
    tokens.get_by_role("link", name="Last »").click()
    expect(page.get_by_role("navigation", name="Pages of the registry")).to_contain_text("Page 2 of")
    expect(page.get_by_role("navigation", name="Pages of the tokens")).not_to_contain_text("Page 1 of")
