"""The quarantine page in Chromium: an admin finds the syslog messages that
could not become events (never their content), replays one after a fix and
discards another; the page passes axe."""

from __future__ import annotations

import asyncio

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from auditsvc.domain.quarantine import quarantine_frame
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.store.engine import runtime_url
from auditsvc.syslog.convert import Rejected
from auditsvc.syslog.header import parse_syslog
from auditsvc.syslog.identity import anonymous

from ..syslog_messages import audit_message, syslog_frame
from .conftest import Console, off_loop, shot, sign_in

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


async def _fill(console: Console) -> None:
    settings = console.service.settings
    mappable = syslog_frame(audit_message("MRN-SYN-BQ01", source="pacs-qa", destination="viewer-qa"))
    frames = [
        (mappable, Rejected("unknown_schema", "older mapping", parse_syslog(mappable))),
        (b"<13>1 - - - - - - <AuditMessage><EventIdentification", Rejected("xml_malformed", "truncated at line 1")),
    ]
    async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
        for frame, rejected in frames:
            await quarantine_frame(audit, frame, rejected, transport="tcp", peer="10.0.0.7", sender=anonymous("tcp"))


def test_an_admin_replays_and_discards_from_the_quarantine(page: Page, console: Console) -> None:
    off_loop(asyncio.run, _fill(console))
    sign_in(page, console, Role.ADMIN)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Quarantine").click()
    expect(page.get_by_role("heading", name="Syslog quarantine")).to_be_visible()
    table = page.get_by_role("table")
    expect(table).to_contain_text("unknown_schema")
    expect(table).to_contain_text("xml_malformed")
    expect(page.locator("main")).not_to_contain_text("MRN-SYN")
    assert not Axe().run(page, options=WCAG).response["violations"]
    shot(page, "quarantine")

    replay = page.get_by_role("row").filter(has_text="unknown_schema").get_by_role("button", name="Replay")
    replay.click()
    expect(page.get_by_role("status")).to_contain_text("replayed: its events are in the log")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text="xml_malformed").get_by_role("button", name="Discard").click()
    expect(page.get_by_role("status").filter(has_text="discarded: it stays in the table")).to_be_visible()
    page.get_by_label("Status").select_option("replayed")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("table")).to_contain_text("unknown_schema")
