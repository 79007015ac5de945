"""``auditsvc report system|actor|activity`` end to end: JSON, streamed CSV,
table; bad input a clear error; each run recorded in the chain."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from auditsvc.domain.tokens import Role

from .conftest import Service, event, run_cli

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-CLI-ACC-1")


def _fill(service: Service) -> None:
    with service.client(service.token(Role.EMITTER, ["epic-adt", "lab-lis"])) as client:
        events = [
            event([MRN], occurred_at="2026-11-01T08:00:00Z"),
            event([MRN], source="lab-lis", destination="epic-adt", occurred_at="2026-11-05T08:00:00Z"),
        ]
        client.post("/v1/events", json={"events": events}).raise_for_status()


def test_system_actor_and_activity_from_the_command_line(service: Service, tmp_path: Path) -> None:
    _fill(service)
    settings = service.settings
    as_json = run_cli(settings, "report", "system", "epic-adt", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert (body["patient_count"], len(body["events"]), body["system"]["registered"]) == (1, 2, False)

    out = tmp_path / "actor.csv"
    actor = ["report", "actor", "mirth-engine/ADT-OUT", "--from", "2026-11-02", "--format", "csv", "--out", str(out)]
    as_csv = run_cli(settings, *actor)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["source_system"] for r in rows] == ["lab-lis"]
    assert rows[0]["patient_identifiers"] == f"{MRN[0]}|{MRN[1]}"

    table = run_cli(settings, "report", "system", "lab-lis")
    assert table.returncode == 0, table.stderr
    assert "epic-adt" in table.stdout and "1 patients" in table.stdout

    activity = run_cli(settings, "report", "activity", "--format", "json")
    assert activity.returncode == 0, activity.stderr
    kinds = [a["activity"] for a in json.loads(activity.stdout)["activity"]]
    assert kinds == ["system-access-report", "actor-access-report", "system-access-report"]
    assert run_cli(settings, "report", "activity").returncode == 0


def test_bad_input_is_a_clear_error(service: Service) -> None:
    unknown = run_cli(service.settings, "report", "system", "no-such-system")
    assert unknown.returncode != 0 and "unknown system" in unknown.stderr + unknown.stdout
    reversed_ = run_cli(service.settings, "report", "activity", "--from", "2026-12-01", "--to", "2026-11-01")
    assert reversed_.returncode != 0 and "'from' is after 'to'" in reversed_.stderr + reversed_.stdout


def test_an_evidence_export_shows_in_the_activity_record(service: Service, tmp_path: Path) -> None:
    _fill(service)
    exported = run_cli(service.settings, "export", "--out", str(tmp_path / "evidence.tar.gz"))
    assert exported.returncode == 0, exported.stderr
    with service.client(service.token(Role.AUDITOR)) as auditor:
        rows = auditor.post("/v1/reports/activity", json={}).json()["activity"]
    [export] = [r for r in rows if r["activity"] == "evidence-export"]
    assert export["channel"] == "export" and export["actor"]["role"] == "operator"
    assert export["details"]["from_seq"] == "0"
