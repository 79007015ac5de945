"""``auditsvc export`` writes an evidence package that ``auditsvc-verify``
(installed with the SDK alone) proves offline: no database, no network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query, run_cli

VERIFY = [sys.executable, "-m", "auditsvc_sdk._verify_cli"]


def fill(service: Service, count: int) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as client:
        for start in range(0, count, 500):
            batch = [event([("urn:oid:1.2.3", f"MRN-EX-{i}")]) for i in range(start, min(count, start + 500))]
            client.post("/v1/events", json={"events": batch}).raise_for_status()


def offline_verify(package: Path, *args: str) -> tuple[int, dict[str, object]]:
    # A clean environment: nothing of the service's configuration or database.
    result = subprocess.run([*VERIFY, str(package), "--json", *args], capture_output=True, text=True, env={})
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_whole_log_export_is_proven_offline_with_the_pinned_key(service: Service, tmp_path: Path) -> None:
    fill(service, 1200)
    package = tmp_path / "evidence.tar.gz"
    result = run_cli(service.settings, "export", "--out", str(package))
    assert result.returncode == 0, result.stderr
    with service.client(service.token(Role.AUDITOR)) as auditor:
        vkey = auditor.get("/v1/checkpoints/verifier-key").text.strip()
    code, report = offline_verify(package, "--key", vkey)
    assert code == 0, report
    # The export is itself on the record, before the package was written: the last event.
    assert (report["from_seq"], report["to_seq"], report["event_count"]) == (0, 1200, 1201)
    assert report["log_keys_pinned"] is True and report["decryption_key_needed"] is False


def test_a_range_export_is_proven_through_a_later_checkpoint(service: Service, tmp_path: Path) -> None:
    fill(service, 700)
    package = tmp_path / "range.tar.gz"
    result = run_cli(service.settings, "export", "--out", str(package), "--from-seq", "300", "--to-seq", "399")
    assert result.returncode == 0, result.stderr
    code, report = offline_verify(package)
    assert code == 0, report
    assert (report["from_seq"], report["to_seq"], report["event_count"]) == (300, 399, 100)
    assert report["log_keys_pinned"] is False  # said plainly: keys came from the package itself
    [row] = query(
        str(service.settings.database_url),
        "SELECT seq, record FROM events WHERE record::jsonb->>'event_type' = 'audit-log-query'",
    )
    recorded = json.loads(row["record"])
    assert row["seq"] == 700 and recorded["attributes"] == {
        "query": "evidence-export",
        "from_seq": "300",
        "to_seq": "399",
    }
    assert recorded["actor"]["role"] == "operator" and recorded["actor"]["id"].startswith("cli:")
    [subject] = recorded["patient"]["identifiers"]
    assert subject["system"] == "urn:auditsvc:evidence-export" and subject["value_enc"].startswith("aes256gcm:")


def test_export_refuses_a_range_outside_the_log(service: Service, tmp_path: Path) -> None:
    fill(service, 10)
    result = run_cli(service.settings, "export", "--out", str(tmp_path / "x.tar.gz"), "--from-seq", "20")
    assert result.returncode == 2
    assert "do not make a range" in " ".join(result.stderr.split())
    assert not (tmp_path / "x.tar.gz").exists()
