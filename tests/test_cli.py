"""The command line end to end: embedded serve, report formats, demo."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import REPO, TEST_SECRET_KEY, Service, event, run_cli, serve_process

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-CLI-0001")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-CLI-0001")


def test_serve_with_no_database_url_starts_embedded_postgres_migrates_and_answers(tmp_path: Path) -> None:
    data_dir = Path(f"/tmp/asvc-cli-{os.getpid()}")  # short: the socket lives in it
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSVC_")}
    env.update(AUDITSVC_DATA_DIR=str(data_dir))
    try:
        with serve_process(env=env, cwd=tmp_path, timeout=90) as base:
            assert (data_dir / "pg" / "PG_VERSION").exists()
            assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
            assert (data_dir / "signing.key").exists()
            created = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "auditsvc",
                    "tokens",
                    "create",
                    "--role",
                    "emitter",
                    "--system",
                    "epic-adt",
                    "--json",
                ],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            token = json.loads(created.stdout)["token"]
            response = httpx.post(
                f"{base}/v1/events",
                json={"events": [event()]},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            url = subprocess.run(
                [sys.executable, "-m", "auditsvc", "db-url"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.strip()
            assert url.startswith("postgresql://") and str(data_dir) in url
    finally:
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def _fill(service: Service) -> None:
    token = service.token(Role.EMITTER, ["epic-adt", "lab-lis"])
    with service.client(token) as client:
        client.post(
            "/v1/events",
            json={
                "events": [
                    event([MRN, EMPI], occurred_at="2026-11-01T08:00:00Z"),
                    event([EMPI], source="lab-lis", destination="epic-adt", occurred_at="2026-11-05T08:00:00Z"),
                ]
            },
        ).raise_for_status()


def test_report_patient_as_json_csv_and_table(service: Service, tmp_path: Path) -> None:
    _fill(service)
    settings: Settings = service.settings
    as_json = run_cli(settings, "report", "patient", "--identifier", f"{MRN[0]}|{MRN[1]}", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert len(body["events"]) == 2
    assert {s["system_id"] for s in body["systems"]} == {"epic-adt", "lab-lis"}

    out = tmp_path / "report.csv"
    as_csv = run_cli(
        settings,
        "report",
        "patient",
        "--identifier",
        f"{EMPI[0]}|{EMPI[1]}",
        "--format",
        "csv",
        "--from",
        "2026-11-02",
        "--out",
        str(out),
    )
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["system_id"] for r in rows} >= {"epic-adt", "lab-lis"}
    assert all(r["first_access"] >= "2026-11-02" for r in rows if r["system_id"] != "auditsvc")

    table = run_cli(settings, "report", "patient", "--identifier", f"{MRN[0]}|{MRN[1]}")
    assert table.returncode == 0 and "epic-adt" in table.stdout and "lab-lis" in table.stdout


def test_report_with_a_malformed_identifier_is_a_clear_error(settings: Settings) -> None:
    result = run_cli(settings, "report", "patient", "--identifier", "no-separator")
    assert result.returncode == 2
    assert "SYSTEM|VALUE" in result.stderr


def test_demo_sends_a_day_and_prints_a_linked_report(settings: Settings) -> None:
    result = run_cli(settings, "demo", "--scale", "0.2", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accepted" in result.stdout
    assert "fhir-patient-app" in result.stdout and "rad-ris" in result.stdout
    waiting = re.search(r"(\d+) break-glass accesses await review", result.stdout)
    assert waiting is not None and int(waiting.group(1)) > 0  # the demo's emergency accesses are in the queue
    verified = run_cli(settings, "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True


def test_secret_key_is_required_in_production(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSVC_")}
    env.update(AUDITSVC_ENV="production", AUDITSVC_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "auditsvc", "db-url"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "AUDITSVC_DATABASE_URL" in result.stderr and "AUDITSVC_SECRET_KEY" in result.stderr
    assert TEST_SECRET_KEY not in result.stderr
