"""The flows page in Chromium: the map of 100+ systems drawn as SVG under the
console's Content Security Policy, the flows and gaps beside it, and an alert
acknowledged through its form (recorded in the chain).

The page needs a registry (organisations, relationships, BAAs), which the
package's shared console does not have, so this module serves its own
database: ``HOSPITAL`` systems send to ``ENGINES`` (interface engines hosted
by business associates, some without an effective BAA), which pass PHI on to
``VENDORS`` (some unregistered)."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from auditsvc.domain.alerts import AlertConfig, raise_alerts
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.store.engine import runtime_url

from ..conftest import REPO, Service, event, query
from ..console_support import module_service, token
from .conftest import _CSP_WATCH, Console, off_loop, shot, sign_in

NOW = datetime.now(UTC)
MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
HOSPITAL = [f"ehr-{i:02d}" for i in range(40)]
ENGINES = [f"engine-{i}" for i in range(8)]
VENDORS = [f"vendor-{i:02d}" for i in range(60)]
ORGS = ["CloudLab Inc", "ClaimsCo", "HIE of the State", "Imaging Partners", "Fax Cloud LLC", "Analytics Co"]


def _entries() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for s in HOSPITAL:
        entries[s] = {"name": s, "organization": "General Hospital", "relationship": "workforce",
                      "baa": {"status": "not_required"}}  # fmt: skip
    for i, s in enumerate(ENGINES):
        baa = (
            {"status": "on_file", "effective": "2026-01-01", "reference": f"BAA-E{i}"}
            if i % 4
            else {
                "status": "on_file",
                "effective": "2025-01-01",
                "expires": (NOW - timedelta(days=20)).date().isoformat(),
            }
        )
        entries[s] = {
            "name": s,
            "organization": f"Engine Hosting {i % 3}",
            "relationship": "business_associate",
            "baa": baa,
        }
    for i, s in enumerate(VENDORS):
        if i % 10 == 9:
            continue  # unregistered
        baa = {"status": "none"} if i % 7 == 3 else {"status": "on_file", "effective": "2026-01-01"}
        entries[s] = {"name": s, "organization": ORGS[i % len(ORGS)], "relationship": "subcontractor", "baa": baa}
    return entries


def _events() -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(HOSPITAL):
        for k in range(1 + i % 4):
            at = (NOW - timedelta(days=3 + k, hours=i)).isoformat()
            patient = [(MRN, f"MRN-FLOWS-{i:03d}{k}")]
            out.append(event(patient, source=s, destination=ENGINES[i % len(ENGINES)], occurred_at=at))
    for i, v in enumerate(VENDORS):
        at = (NOW - timedelta(days=2, minutes=i)).isoformat()
        patient = [(MRN, f"MRN-FLOWS-9{i:03d}")]
        out.append(event(patient, source=ENGINES[i % len(ENGINES)], destination=v, occurred_at=at))
    return out


@pytest.fixture(scope="module")
def flows_console(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    # Set up and torn down off this thread: Playwright's event loop may already run here.
    started = module_service(server_url, template_db, tmp_path_factory.mktemp("flows-console") / "data")
    service: Service = off_loop(started.__enter__)
    try:

        def seed() -> Console:
            tokens = {
                role: token(service, role, name=f"Synthetic {role.value}") for role in Role if role is not Role.EMITTER
            }
            emitter = token(service, Role.EMITTER, systems=HOSPITAL + ENGINES)
            with httpx.Client(base_url=service.url, timeout=60) as http:
                admin = {"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
                for system_id, entry in _entries().items():
                    http.put(f"/v1/systems/{system_id}", json=entry, headers=admin).raise_for_status()
                sent = http.post(
                    "/v1/events", json={"events": _events()}, headers={"Authorization": f"Bearer {emitter}"}
                )
                sent.raise_for_status()

            async def alerts() -> None:
                settings = service.settings
                async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
                    await raise_alerts(audit, AlertConfig())

            asyncio.run(alerts())
            return Console(service, tokens)

        yield off_loop(seed)
    finally:
        off_loop(started.__exit__, None, None, None)


@pytest.fixture
def flows_page(browser: Browser, flows_console: Console) -> Iterator[Page]:
    context = browser.new_context(base_url=flows_console.url, locale="en-US", timezone_id="America/Chicago",
                                  viewport={"width": 1400, "height": 1000})  # fmt: skip
    problems: list[str] = []
    context.expose_function("__reportCsp", lambda text: problems.append(f"CSP violation: {text}"))
    context.add_init_script(_CSP_WATCH)
    tab = context.new_page()
    tab.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.problems = problems  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()
    assert not problems, "the console reported problems:\n" + "\n".join(problems)


def test_the_map_of_100_systems_with_its_flows_gaps_and_alerts(flows_page: Page, flows_console: Console) -> None:
    page = flows_page
    sign_in(page, flows_console, Role.PRIVACY_OFFICER)
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Flows").click()
    expect(page.get_by_role("heading", name="PHI flows and business associate coverage")).to_be_visible()
    graph = page.get_by_role("img", name=re.compile("PHI flows between systems"))
    expect(graph).to_be_visible()
    systems = len(HOSPITAL) + len(ENGINES) + len(VENDORS)
    expect(graph.locator("rect")).to_have_count(systems)
    expect(graph.locator("path")).to_have_count(len(HOSPITAL) + len(VENDORS))
    expect(graph.locator("path[stroke='#b3261e']").first).to_be_attached()  # uncovered flows in red
    expect(page.locator("#flow-summary")).to_contain_text(
        f"{len(HOSPITAL) + len(VENDORS)} flows among {systems} systems"
    )
    expect(page.locator("#flows tbody tr")).to_have_count(len(HOSPITAL) + len(VENDORS))
    gaps = page.locator("#gaps")
    expect(gaps).to_contain_text("BAA expired")
    expect(gaps).to_contain_text("not in the registry")
    expect(gaps).to_contain_text("no BAA")
    # The labels stay legible: no two systems' boxes overlap in a column.
    boxes = graph.locator("rect").evaluate_all("rs => rs.map(r => [r.x.baseVal.value, r.y.baseVal.value])")
    for column in {x for x, _ in boxes}:
        ys = sorted(y for x, y in boxes if x == column)
        assert all(b - a >= 16 for a, b in itertools.pairwise(ys))
    shot(page, "flows")
    # The documentation's picture, the page down to the end of the map: only
    # when refreshing the docs (AUDITSVC_CONSOLE_DOCS=1), as for the others.
    bottom = page.locator("figure").bounding_box()
    assert bottom is not None
    if os.environ.get("AUDITSVC_CONSOLE_DOCS") == "1":
        height = bottom["y"] + bottom["height"] + 16
        page.screenshot(
            path=str(REPO / "docs" / "console" / "flows.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1400, "height": height},
        )


def test_an_alert_is_acknowledged_through_its_form_and_recorded(flows_page: Page, flows_console: Console) -> None:
    page = flows_page
    sign_in(page, flows_console, Role.PRIVACY_OFFICER)
    page.goto("/flows")
    row = page.locator("#alert-list tbody tr").filter(has_text="baa expiring").first
    if row.count() == 0:
        row = page.locator("#alert-list tbody tr").first
    expect(row).to_be_visible()
    action = row.locator("form").get_attribute("action")
    assert action is not None
    alert_id = action.split("/")[3]
    row.get_by_label("Notes").fill("renewal requested from the vendor")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(re.compile(r"/flows#alerts$"))
    expect(page.locator(f"form[action='/flows/alerts/{alert_id}/acknowledge']")).to_have_count(0)
    rows = off_loop(
        query,
        str(flows_console.service.settings.database_url),
        "SELECT record FROM events WHERE record::jsonb ->> 'event_type' = 'alert-acknowledgement' "
        "AND record::jsonb -> 'attributes' ->> 'alert_id' = $1",
        alert_id,
    )
    assert len(rows) == 1 and "renewal requested from the vendor" in rows[0]["record"]


def test_an_auditor_is_refused_the_flows_page(flows_page: Page, flows_console: Console) -> None:
    page = flows_page
    sign_in(page, flows_console, Role.AUDITOR)
    expect(page.get_by_role("navigation", name="Pages").get_by_role("link", name="Flows")).to_have_count(0)
    page.goto("/flows")
    expect(page.get_by_role("alert")).to_contain_text("needs the role privacy_officer")
    page.problems.clear()  # type: ignore[attr-defined]  # Chromium logs the 403 answer
