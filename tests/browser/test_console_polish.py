"""Follow-ups of the console's review in Chromium: a break-glass access's
review state on its event page."""

from __future__ import annotations

from datetime import timedelta

import httpx
from playwright.sync_api import Page, expect

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
