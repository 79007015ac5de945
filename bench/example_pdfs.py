"""Make the sample report PDFs under docs/examples/ for a synthetic patient.

    AUDITSVC_DATA_DIR=$(mktemp -d) AUDITSVC_ENV=development .venv/bin/python -m bench.example_pdfs

Uses the embedded PostgreSQL (or ``AUDITSVC_DATABASE_URL``): a year of a
synthetic patient's events (care, a lab, a payer, public health, a court
order, a records request of their own), three systems in the registry, then
the patient-access report and the accounting of disclosures as PDFs, made
exactly as ``?format=pdf`` makes them.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from auditsvc_sdk import PhiAccess
from auditsvc_sdk.wire import wire_event

from auditsvc.cli._common import database, settings
from auditsvc.domain.disclosures import DisclosureQuery
from auditsvc.domain.ingest import prepare
from auditsvc.domain.reports import PatientAccessQuery
from auditsvc.domain.systems import SystemEntryIn, set_entries
from auditsvc.domain.tokens import Caller, Role
from auditsvc.reports_pdf.make import accounting_pdf, patient_report_pdf
from auditsvc.runtime import open_audit_log

OUT = Path(__file__).resolve().parent.parent / "docs" / "examples"
MRN = {"system": "urn:oid:2.16.840.1.113883.3.1234.1.1", "value": "MRN-EXAMPLE-0042"}
EMPI = {"system": "urn:oid:2.16.840.1.113883.3.9999.0", "value": "EMPI-7730-0042"}
OFFICER = Caller(
    token_id="tok-privacy-1", role=Role.PRIVACY_OFFICER, systems=(), name="Dana Whitfield, Privacy Officer"
)
ADMIN = Caller(token_id="tok-admin-1", role=Role.ADMIN, systems=(), name="Registry Admin")

REGISTRY = [
    {
        "system_id": "state-health-dept",
        "name": "State Department of Public Health",
        "organization": "State of Illinois",
        "address": "535 W Jefferson St, Springfield, IL 62761",
        "relationship": "external_recipient",
        "baa": {"status": "not_required"},
    },
    {
        "system_id": "acme-lab",
        "name": "Acme Reference Laboratory",
        "organization": "Acme Diagnostics LLC",
        "address": "1 Lab Way, Springfield, IL 62701",
        "relationship": "business_associate",
        "baa": {"status": "on_file", "effective": "2024-01-01", "reference": "BAA-2024-017"},
    },
    {
        "system_id": "epic-adt",
        "name": "Hospital EHR (ADT)",
        "organization": "Springfield General Hospital",
        "relationship": "workforce",
        "baa": {"status": "not_required"},
    },
]


def _event(when: str, source: str, destination: str, elements: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": when,
        "action": "R",
        "event_type": extra.pop("event_type", "hl7v2-message"),
        "patient": {"identifiers": extra.pop("ids", [MRN, EMPI])},
        "data_elements": elements,
        "source": {"system_id": source},
        "destination": {"system_id": destination, **({"name": extra.pop("to_name")} if "to_name" in extra else {})},
        "actor": extra.pop("actor", {"id": "mirth/ADT-OUT", "type": "system"}),
        "outcome": 0,
        **extra,
    }


def _events() -> list[dict[str, Any]]:
    him = {"id": "u-4411", "type": "user", "role": "HIM clerk", "name": "R. Alvarez"}
    return [
        _event("2026-01-06T14:02:00Z", "epic-adt", "acme-lab", ["PID", "PV1", "ORC", "OBR"], purpose_of_use="TREAT"),
        _event("2026-01-07T09:15:00Z", "acme-lab", "epic-adt", ["PID", "OBR", "OBX"], action="C"),
        _event(
            "2026-01-08T10:30:00Z",
            "epic-fhir",
            "cardiology-portal",
            ["Observation", "Condition"],
            event_type="fhir-rest",
            actor={"id": "dr-chen", "type": "user", "role": "physician", "name": "Dr. L. Chen"},
            purpose_of_use="TREAT",
        ),
        _event(
            "2026-02-02T08:00:00Z",
            "epic-adt",
            "payer-bcbs",
            ["PID", "IN1", "DG1"],
            event_type="disclosure",
            purpose_of_use="HPAYMT",
        ),
        _event(
            "2026-02-15T11:00:00Z",
            "him-release",
            "state-health-dept",
            ["PID-5", "PID-7", "OBX"],
            event_type="disclosure",
            purpose_of_use="PUBHLTH",
            actor=him,
        ),
        _event(
            "2026-05-15T11:00:00Z",
            "him-release",
            "state-health-dept",
            ["PID-5", "PID-7", "RXA"],
            event_type="disclosure",
            purpose_of_use="PUBHLTH",
            actor=him,
        ),
        _event(
            "2026-08-14T11:00:00Z",
            "him-release",
            "state-health-dept",
            ["PID-5", "PID-7", "OBX"],
            event_type="disclosure",
            purpose_of_use="PUBHLTH",
            actor=him,
        ),
        _event(
            "2026-06-03T16:20:00Z",
            "him-release",
            "county-circuit-court",
            ["Patient.name", "Encounter", "DiagnosticReport", "ZPV"],
            event_type="disclosure",
            purpose_of_use="JUDICIAL",
            to_name="Sangamon County Circuit Court",
            actor=him,
        ),
        _event(
            "2026-07-01T12:00:00Z",
            "him-release",
            "patient-portal",
            ["DocumentReference"],
            event_type="disclosure",
            attributes={"recipient_is_patient": True},
            actor=him,
        ),
        _event(
            "2026-09-09T09:00:00Z",
            "epic-adt",
            "life-insurer-xyz",
            ["PID", "DG1"],
            event_type="disclosure",
            purpose_of_use="HMARKT",
            attributes={"authorization": "AUTH-2026-118"},
            actor=him,
        ),
    ]


async def main(url: str) -> None:
    s = settings()
    async with open_audit_log(s, url, background=False) as audit:
        await set_entries(audit, ADMIN, [SystemEntryIn.model_validate(e) for e in REGISTRY])
        await audit.appender.append_batch(
            prepare([wire_event(PhiAccess.model_validate(e)) for e in _events()], audit.keys, "example-emitter")
        )
        accounting = await accounting_pdf(
            audit, DisclosureQuery.model_validate({"identifier": MRN, "requested_at": "2026-11-24"}), OFFICER
        )
        patient = await patient_report_pdf(
            audit,
            PatientAccessQuery.model_validate({"identifier": EMPI, "from": "2026-01-01", "to": "2026-11-24"}),
            OFFICER,
        )
    (OUT / "accounting-of-disclosures.pdf").write_bytes(accounting)
    (OUT / "patient-access-report.pdf").write_bytes(patient)
    print(f"wrote {OUT / 'accounting-of-disclosures.pdf'} and {OUT / 'patient-access-report.pdf'}")


if __name__ == "__main__":
    asyncio.run(main(database(settings())))  # the embedded server started and migrated first
