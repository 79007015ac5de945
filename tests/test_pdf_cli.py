"""``auditsvc report disclosures`` and the PDFs of ``report patient`` and
``report disclosures`` at the command line, each run recorded in the chain."""

from __future__ import annotations

import json
from pathlib import Path

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query, run_cli
from .test_disclosures import EMPI, MRN, disclosure
from .test_pdf import flat, pdf_text

WHO = f"{MRN[0]}|{MRN[1]}"


def _fill(service: Service) -> None:
    events = [
        disclosure("2026-01-10T09:00:00Z", "state-health-dept", "PUBHLTH"),
        disclosure("2026-02-10T09:00:00Z", "state-health-dept", "PUBHLTH"),
        disclosure("2026-03-10T09:00:00Z", "payer-acme", "HPAYMT"),
        event([MRN, EMPI], source="epic-adt", destination="lab-lis", occurred_at="2026-02-01T08:00:00Z"),
    ]
    with service.client(service.token(Role.EMITTER, ["epic-adt", "him-release"])) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()


def test_report_disclosures_as_json_table_and_pdf(service: Service, tmp_path: Path) -> None:
    _fill(service)
    settings = service.settings
    as_json = run_cli(
        settings, "report", "disclosures", "--identifier", WHO, "--requested-at", "2026-11-24", "--format", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert [(e["recipient"]["system_id"], e["count"]) for e in body["entries"]] == [("state-health-dept", 2)]
    assert body["excluded"]["treatment_payment_operations"] == 1

    table = run_cli(settings, "report", "disclosures", "--identifier", WHO, "--requested-at", "2026-11-24")
    assert table.returncode == 0, table.stderr
    assert "state-health-dept" in table.stdout and "treatment_payment_operations 1" in table.stdout

    out = tmp_path / "accounting.pdf"
    as_pdf = run_cli(
        settings,
        "report",
        "disclosures",
        "--identifier",
        WHO,
        "--requested-at",
        "2026-11-24",
        "--format",
        "pdf",
        "--out",
        str(out),
    )
    assert as_pdf.returncode == 0, as_pdf.stderr
    text = flat(pdf_text(out.read_bytes()))
    assert MRN[1] in text and "10 Jan 2026 to 10 Feb 2026" in text and "cli:" in text

    patient = tmp_path / "patient.pdf"
    as_pdf = run_cli(settings, "report", "patient", "--identifier", WHO, "--format", "pdf", "--out", str(patient))
    assert as_pdf.returncode == 0, as_pdf.stderr
    # The four events, and the four privacy-office reads of the accounting runs above.
    assert "8 access events" in flat(pdf_text(patient.read_bytes()))

    kinds = [
        r["k"]
        for r in query(
            str(settings.database_url),
            "SELECT record::jsonb->'attributes'->>'query' AS k FROM events "
            "WHERE record::jsonb->>'event_type' = 'audit-log-query' ORDER BY seq",
        )
    ]
    assert kinds == [
        "disclosure-accounting",
        "disclosure-accounting",
        "disclosure-accounting",
        "disclosure-accounting-pdf",
        "patient-access-report",
        "patient-access-report-pdf",
    ]


def test_a_pdf_needs_a_file(settings: object) -> None:
    from auditsvc.settings import Settings

    assert isinstance(settings, Settings)
    result = run_cli(settings, "report", "disclosures", "--identifier", WHO, "--format", "pdf")
    assert result.returncode != 0 and "--out" in result.stderr
