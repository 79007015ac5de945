"""Report PDFs: the accounting of disclosures and the patient-access report,
their text extracted and checked (patient, counts, checkpoint), their
integrity statement matching a checkpoint the service signed, and their
production recorded in the chain."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from auditsvc.domain.tokens import Role
from auditsvc.domain.tree import inclusion_proof, inclusion_proofs
from auditsvc.runtime import open_audit_log
from auditsvc.store.engine import runtime_url
from auditsvc.store.session import driver_connection

from .conftest import Service, as_superuser, event, query
from .test_disclosures import EMPI, MRN, disclosure

PATIENT = {"system": MRN[0], "value": MRN[1]}


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def officer(service: Service) -> httpx.Client:
    events = [
        disclosure("2026-01-10T09:00:00Z", "state-health-dept", "PUBHLTH"),
        disclosure("2026-04-11T09:00:00Z", "state-health-dept", "PUBHLTH", data_elements=["Immunization"]),
        disclosure("2026-05-05T09:00:00Z", "county-court", "JUDICIAL", data_elements=["DG1", "ZPI"]),
        disclosure("2026-05-06T09:00:00Z", "cardiology-clinic", "TREAT"),
        event([MRN, EMPI], source="epic-adt", destination="lab-lis", occurred_at="2026-02-01T08:00:00Z"),
    ]
    events[0]["destination"]["name"] = "State Department of Health"
    with service.client(service.token(Role.EMITTER, ["epic-adt", "him-release"])) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()
    return service.client(service.token(Role.PRIVACY_OFFICER))


def recorded(service: Service, kind: str) -> list[dict[str, Any]]:
    rows = query(
        str(service.settings.database_url),
        "SELECT record::jsonb AS r FROM events WHERE record::jsonb->'attributes'->>'query' = $1 ORDER BY seq",
        kind,
    )
    return [json.loads(r["r"]) if isinstance(r["r"], str) else r["r"] for r in rows]


def checkpoint_root(service: Service, tree_size: int) -> str:
    [row] = query(
        str(service.settings.database_url), "SELECT root_hash FROM checkpoints WHERE tree_size = $1", tree_size
    )
    return bytes(row["root_hash"]).hex()


def test_the_accounting_pdf_lists_the_entries_and_its_checkpoint(officer: httpx.Client, service: Service) -> None:
    response = officer.post(
        "/v1/reports/disclosures?format=pdf", json={"identifier": PATIENT, "requested_at": "2026-11-24"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = flat(pdf_text(response.content))
    assert "Accounting of disclosures" in text
    assert MRN[1] in text and EMPI[1] in text  # the patient, by every linked identifier
    assert "24 Nov 2020 to 24 Nov 2026" in text
    assert "State Department of Health" in text and "address not on file" in text
    assert "10 Jan 2026 to 11 Apr 2026" in text  # grouped: first and last date
    assert "3 disclosures to 2 recipients" in text
    assert "public health activities" in text and "test results" in text and '"ZPI"' in text
    assert "cardiology-clinic" not in text  # treatment: excluded, and no counts by reason for the patient
    # The integrity statement names a checkpoint the service signed, covering every listed event.
    [produced] = recorded(service, "disclosure-accounting-pdf")
    size = produced["attributes"]["checkpoint_tree_size"]
    assert f"{size} events" in text
    assert checkpoint_root(service, size) in text.replace(" ", "")
    assert produced["attributes"]["events_proven"] == 3
    assert produced["attributes"]["pdf_sha256"] == hashlib.sha256(response.content).hexdigest()
    # The delivery itself is recorded, before the production of the document.
    [delivered] = recorded(service, "disclosure-accounting")
    assert delivered["attributes"]["format"] == "pdf" and delivered["attributes"]["disclosures_listed"] == 3
    assert delivered["seq"] < size <= produced["seq"]


def test_the_patient_report_pdf_lists_systems_events_and_checkpoint(officer: httpx.Client, service: Service) -> None:
    response = officer.post("/v1/reports/patient-access?format=pdf", json={"identifier": PATIENT, "from": "2026-01-01"})
    assert response.status_code == 200, response.text
    text = flat(pdf_text(response.content))
    assert "Report of access to a patient's health record" in text
    assert MRN[1] in text and EMPI[1] in text
    assert "From 1 Jan 2026 00:00 UTC on" in text
    assert "5 access events involving" in text
    assert "State Department of Health (state-health-dept)" in text
    [produced] = recorded(service, "patient-access-report-pdf")
    size = produced["attributes"]["checkpoint_tree_size"]
    assert produced["attributes"]["events_proven"] == 5
    assert checkpoint_root(service, size) in text.replace(" ", "")
    assert "{" not in text  # no raw JSON


def test_an_unknown_format_is_refused_naming_it(officer: httpx.Client) -> None:
    response = officer.post("/v1/reports/disclosures?format=docx", json={"identifier": PATIENT})
    assert response.status_code == 422
    assert "format" in response.text


def test_a_rewritten_record_stops_the_document(officer: httpx.Client, service: Service) -> None:
    # A superuser edits a listed disclosure's record (not its hashes): the
    # accounting still reads it, but the document is not certified.
    [row] = query(
        str(service.settings.database_url),
        "SELECT seq FROM events WHERE record::jsonb->'destination'->>'system_id' = 'county-court'",
    )
    as_superuser(
        str(service.settings.database_url),
        f"UPDATE events SET record = replace(record, '\"DG1\"', '\"PID\"') WHERE seq = {row['seq']}",
    )
    body = {"identifier": PATIENT, "requested_at": "2026-11-24"}
    assert officer.post("/v1/reports/disclosures", json=body).status_code == 200
    response = officer.post("/v1/reports/disclosures?format=pdf", json=body)
    assert response.status_code == 409, response.text
    assert f"seq {row['seq']}" in response.json()["detail"] and MRN[1] not in response.text
    assert recorded(service, "disclosure-accounting-pdf") == []


def test_inclusion_proofs_in_one_pass_match_one_by_one(service: Service) -> None:
    events = [event([MRN], occurred_at=f"2026-03-01T00:{m:02d}:00Z") for m in range(40)]
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as client:
        for _ in range(8):  # 320 events: past one stored block of 256 leaves
            batch = [dict(e, event_id=str(uuid.uuid4())) for e in events]
            client.post("/v1/events", json={"events": batch}).raise_for_status()

    async def go() -> None:
        settings = service.settings
        async with (
            open_audit_log(settings, runtime_url(settings), background=False) as audit,
            driver_connection(audit.engine) as conn,
        ):
            wanted = [0, 1, 5, 255, 256, 257, 299]
            batch = await inclusion_proofs(conn, audit.log_id, wanted, 300)
            for seq in wanted:
                assert batch[seq] == await inclusion_proof(conn, audit.log_id, seq, 300)

    asyncio.run(go())


def test_the_patient_pdf_does_not_reveal_a_suspension(officer: httpx.Client, service: Service) -> None:
    suspension = {
        "recipient_system_id": "county-court",
        "ends": "2099-01-01",
        "reference": "Letter OIG-77",
        "identifier": PATIENT,
    }
    assert officer.post("/v1/disclosure-suspensions", json=suspension).status_code == 201
    body = {"identifier": PATIENT, "from": "2026-01-01"}
    as_json = officer.post("/v1/reports/patient-access", json=body).json()
    assert "disclosure-suspension" in {e["event_type"] for e in as_json["events"]}  # the officer sees it
    text = flat(pdf_text(officer.post("/v1/reports/patient-access?format=pdf", json=body).content))
    assert "disclosure-suspensions" not in text and "OIG-77" not in text
    # The five events and the JSON report just run (auditsvc to auditsvc:privacy_officer); not the suspension.
    assert "6 access events involving 8 systems" in text
