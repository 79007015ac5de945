"""The auditor page in Chromium: the checkpoint and its note, verify now with
progress to a result, the evidence package verified with the SDK alone, and
a privacy officer refused."""

from __future__ import annotations

import re
from pathlib import Path

from auditsvc_sdk import verify_package
from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role

from .conftest import SEED, Console, shot, sign_in


def test_verify_now_runs_to_intact_with_progress_and_is_recorded(page: Page, console: Console) -> None:
    console.service.client(console.tokens[Role.ADMIN]).post("/v1/checkpoints").raise_for_status()
    sign_in(page, console, Role.AUDITOR)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Auditor").click()
    expect(page.get_by_role("heading", name="Auditor", exact=True)).to_be_visible()
    expect(page.locator("pre.note")).to_contain_text("test.auditsvc.local/log")
    page.get_by_role("button", name="Verify now").click()
    status = page.locator("#verification-status")
    expect(status).to_have_class(re.compile(r"\bintact\b"), timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("INTACT")
    expect(page.locator("#run-progress")).to_have_attribute("value", "100")
    expect(status).to_contain_text("Alex Auditor (synthetic)")
    expect(page.get_by_role("table", name="Recent verifications")).to_contain_text("intact")
    shot(page, "auditor")
    # The request and its result are in the chain, as the activity record shows them.
    officer = console.service.client(console.tokens[Role.PRIVACY_OFFICER])
    activity = officer.post("/v1/reports/activity", json={"limit": 1000}).json()["activity"]
    assert {"verification", "verification-result"} <= {row["activity"] for row in activity} | {
        row["details"].get("query") for row in activity
    }


def test_the_evidence_package_downloads_and_verifies_offline(page: Page, console: Console, tmp_path: Path) -> None:
    sign_in(page, console, Role.AUDITOR)
    page.goto("/auditor")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the evidence package").click()
    path = tmp_path / "evidence.tar.gz"
    download.value.save_as(path)
    assert download.value.suggested_filename.startswith("auditsvc-evidence-")
    vkey = console.service.client(console.tokens[Role.AUDITOR]).get("/v1/checkpoints/verifier-key").text.strip()
    report = verify_package(path, trusted_log_keys=[vkey])  # the SDK alone, no database
    assert report.origin == "test.auditsvc.local/log" and report.log_keys_pinned and report.to_seq >= len(SEED)
