"""The auditor page in Chromium: the checkpoint and its note, verify now with
progress to a result, the evidence package verified with the SDK alone, and
a privacy officer refused."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from auditsvc_sdk import verify_package
from playwright.sync_api import Page, expect

from auditsvc.domain.tokens import Role
from auditsvc.store import verification_runs as runs
from auditsvc.store.engine import asyncpg_dsn, runtime_url

from ..console_support import sign_in as console_sign_in
from .conftest import SEED, WITNESS_NAME, Console, shot, sign_in


def cosigned_checkpoint(console: Console) -> None:
    """An admin signs a checkpoint now; back once the witness's cosignature is stored with it."""
    admin = console.service.client(console.tokens[Role.ADMIN])
    admin.post("/v1/checkpoints").raise_for_status()
    auditor = console.service.client(console.tokens[Role.AUDITOR])
    deadline = time.monotonic() + 20
    while f"\u2014 {WITNESS_NAME} " not in auditor.get("/v1/checkpoints/latest").text:
        assert time.monotonic() < deadline, "the witness did not cosign the checkpoint"
        time.sleep(0.1)


def test_verify_now_runs_to_intact_with_progress_and_is_recorded(page: Page, console: Console) -> None:
    cosigned_checkpoint(console)
    sign_in(page, console, Role.AUDITOR)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Auditor").click()
    expect(page.get_by_role("heading", name="Auditor", exact=True)).to_be_visible()
    expect(page.locator("pre.note")).to_contain_text("test.auditsvc.local/log")
    # The latest checkpoint's witnesses: the name and when its cosignature came.
    witnesses = page.get_by_role("table", name="Witnesses that cosigned this checkpoint")
    expect(witnesses.locator("tbody tr")).to_have_count(1)
    expect(witnesses.locator("tbody td").first).to_have_text(WITNESS_NAME)
    expect(witnesses.locator("tbody td time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT.*Z$"))
    expect(page.locator("pre.note")).to_contain_text(f"\u2014 {WITNESS_NAME} ")
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


class OtherProcess:
    """A verification run by another process: its own connection holding the
    log's verification lock, writing the run's rows as it goes (on an event
    loop of its own thread, as Playwright's runs in this one)."""

    def __init__(self, url: str) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.loop = self.pool.submit(asyncio.new_event_loop).result()
        self.conn: asyncpg.Connection = self.call(lambda: asyncpg.connect(asyncpg_dsn(url)))

    def call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        return self.pool.submit(lambda: self.loop.run_until_complete(work())).result()

    def close(self) -> None:
        self.call(self.conn.close)
        self.pool.submit(self.loop.close).result()
        self.pool.shutdown()


@pytest.fixture
def other_process(console: Console) -> Iterator[OtherProcess]:
    other = OtherProcess(runtime_url(console.service.settings))
    try:
        yield other
    finally:
        other.close()


def test_a_running_verification_shows_its_progress_as_it_goes(
    page: Page, console: Console, other_process: OtherProcess
) -> None:
    conn = other_process.conn
    log_id = other_process.call(lambda: conn.fetchval("SELECT log_id FROM logs"))
    assert other_process.call(lambda: runs.try_run_lock(conn, log_id))
    run_id = uuid.uuid4()
    other_process.call(
        lambda: runs.insert_run(conn, run_id, log_id, "Other Auditor (synthetic)", "auditor", "cli", 1000)
    )
    other_process.call(lambda: runs.insert_progress(conn, run_id, 250, 1000))
    sign_in(page, console, Role.AUDITOR)
    page.goto("/auditor")
    expect(page.locator("#run-status")).to_have_text("RUNNING")
    expect(page.locator("#run-progress")).to_have_attribute("value", "25")
    expect(page.get_by_role("button", name="Verify now")).to_be_disabled()
    # The page's script polls the status: the next heartbeat shows without a reload.
    other_process.call(lambda: runs.insert_progress(conn, run_id, 600, 1000))
    expect(page.locator("#run-progress")).to_have_attribute("value", "60")
    expect(page.locator("#run-counts")).to_have_text("600 of 1,000 events checked")
    other_process.call(lambda: runs.insert_result(conn, run_id, "intact", tree_size=1000, checked_rows=1000))
    other_process.call(lambda: runs.release_run_lock(conn, log_id))
    expect(page.locator("#verification-status")).to_have_class(re.compile(r"\bintact\b"))
    expect(page.get_by_role("button", name="Verify now")).to_be_enabled()


def test_polling_the_verification_status_does_not_hold_off_the_idle_logoff(console: Console) -> None:
    client, _ = console_sign_in(console.service, console.tokens[Role.AUDITOR])
    config = console.service.app.state.console
    usual = config.now
    start = usual()
    try:
        config.now = lambda: start + config.idle - timedelta(seconds=5)
        status = client.get("/auditor/verification")
        assert status.status_code == 200 and "run" in status.json()
        config.now = lambda: start + config.idle + timedelta(seconds=5)
        # The poll did not count as activity: the session has been idle since sign-in.
        page = client.get("/auditor", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].endswith("ended=idle")
    finally:
        config.now = usual
        client.close()
