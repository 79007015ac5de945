"""``auditsvc report break-glass`` and ``auditsvc review`` against a real database."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query, run_cli

PATIENT = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-BGCLI-0001")


def test_the_queue_and_a_verdict_at_the_command_line(service: Service, tmp_path: Path) -> None:
    old = (datetime.now(UTC) - timedelta(days=9)).isoformat()
    glass = event([PATIENT], source="epic-ehr", destination="epic-ehr", event_type="break-glass", occurred_at=old)
    plain = event([PATIENT], source="epic-ehr", destination="lab-lis")
    with service.client(service.token(Role.EMITTER, ["epic-ehr"])) as emitter:
        emitter.post("/v1/events", json={"events": [glass, plain]}).raise_for_status()
    settings = service.settings

    listed = run_cli(settings, "report", "break-glass", "--status", "overdue", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert [i["event"]["event_id"] for i in report["items"]] == [glass["event_id"]]
    assert report["items"][0]["overdue"] is True

    table = run_cli(settings, "report", "break-glass")
    assert table.returncode == 0 and glass["event_id"] in table.stdout and "OVERDUE" in table.stdout

    reviewed = run_cli(settings, "review", glass["event_id"], "--verdict", "investigate", "--notes", "asked the ED")
    assert reviewed.returncode == 0, reviewed.stderr
    final = run_cli(settings, "review", glass["event_id"], "--verdict", "appropriate")
    assert final.returncode == 0 and "supersedes review" in final.stdout

    out = tmp_path / "reviewed.csv"
    written = run_cli(settings, "report", "break-glass", "--status", "reviewed", "--format", "csv", "--out", str(out))
    assert written.returncode == 0, written.stderr
    [row] = list(csv.DictReader(out.open()))
    assert (row["event_id"], row["verdict"], row["reviews"]) == (glass["event_id"], "appropriate", "2")
    assert row["reviewer"].startswith("cli:")

    # Each listing page and each review left its event in the chain.
    rows = query(
        str(settings.database_url),
        "SELECT record::jsonb->>'event_type' AS t, record::jsonb->'attributes'->>'query' AS q FROM events ORDER BY seq",
    )
    kinds = [(r["t"], r["q"]) for r in rows[2:]]
    assert kinds == [
        ("audit-log-query", "break-glass-queue"),
        ("audit-log-query", "break-glass-queue"),
        ("break-glass-review", None),
        ("break-glass-review", None),
        ("audit-log-query", "break-glass-queue"),
    ]


def test_bad_input_at_the_command_line(service: Service) -> None:
    plain = event([PATIENT], source="epic-ehr", destination="lab-lis")
    with service.client(service.token(Role.EMITTER, ["epic-ehr"])) as emitter:
        emitter.post("/v1/events", json={"events": [plain]}).raise_for_status()
    settings = service.settings
    not_glass = run_cli(settings, "review", plain["event_id"], "--verdict", "appropriate")
    assert not_glass.returncode == 2 and "not a break-glass access" in not_glass.stderr
    missing = run_cli(settings, "review", "0190a000-0000-7000-8000-000000000000", "--verdict", "appropriate")
    assert missing.returncode == 2 and "event_id" in missing.stderr
    bad_id = run_cli(settings, "review", "nope", "--verdict", "appropriate")
    assert bad_id.returncode == 2 and "event_id" in bad_id.stderr
    reversed_ = run_cli(settings, "report", "break-glass", "--from", "2026-11-05", "--to", "2026-11-01")
    assert reversed_.returncode == 2 and "'from' is after 'to'" in reversed_.stderr
