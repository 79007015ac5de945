"""Making a report document: run the report (recorded in the chain as
any report is), certify what it lists against a checkpoint signed now
(domain/report_integrity.py), render it, and record that the document was
produced (its SHA-256 and the checkpoint it was checked against) before the
bytes leave the service. Used by the API (``?format=pdf``) and the CLI
(``--format pdf``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp

from ..domain.disclosures import DisclosureQuery, disclosure_accounting, record_service_read
from ..domain.errors import InvalidInput
from ..domain.periods import bound
from ..domain.report_integrity import IntegrityStatement, check_listed_events
from ..domain.reports import PatientAccessQuery, patient_access_report
from ..domain.reserved import SERVICE_SYSTEM_ID
from ..domain.suspensions import SUSPENSION_EVENT_TYPE
from ..domain.systems import registry_entries
from ..domain.tokens import Caller
from ..runtime import AuditLog
from .accounting import accounting_document
from .patient import patient_report_document

PDF_MEDIA_TYPE = "application/pdf"
# A document listing more events than this is not one a person reads: the
# officer narrows the period (or exports CSV).
MAX_PDF_EVENTS = 10_000


def _suspension_record(event: dict[str, Any]) -> bool:
    return bool(event["event_type"] == SUSPENSION_EVENT_TYPE and event["source"]["system_id"] == SERVICE_SYSTEM_ID)


def generated_by(reader: Caller) -> str:
    return f"{reader.name or reader.token_id} ({reader.role.value})"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%d %b %Y %H:%M UTC").lstrip("0")


async def _record_document(
    audit: AuditLog, reader: Caller, subject: Identifier, kind: str, pdf: bytes, statement: IntegrityStatement
) -> None:
    await record_service_read(
        audit,
        reader,
        [subject],
        {
            "query": f"{kind}-pdf",
            "format": "pdf",
            "pdf_sha256": hashlib.sha256(pdf).hexdigest(),
            "checkpoint_tree_size": statement.tree_size,
            "events_proven": statement.events_checked,
        },
    )


async def accounting_pdf(audit: AuditLog, query: DisclosureQuery, reader: Caller) -> bytes:
    """The accounting of disclosures as a PDF, its delivery and production recorded."""
    accounting = await disclosure_accounting(audit, query, reader, delivered_as="pdf")
    statement = await check_listed_events(audit, accounting.listed_seqs)
    pdf = accounting_document(accounting.report, statement, generated_by=generated_by(reader), generated_at=_stamp())
    await _record_document(audit, reader, query.identifier, "disclosure-accounting", pdf, statement)
    return pdf


async def patient_report_pdf(audit: AuditLog, query: PatientAccessQuery, reader: Caller) -> bytes:
    """The whole patient-access report (every page) as a PDF."""
    query = query.model_copy(update={"limit": 1000, "cursor": None})
    report = await patient_access_report(audit, query, reader)
    events = list(report["events"])
    while report["next_cursor"]:
        if len(events) >= MAX_PDF_EVENTS:
            raise InvalidInput(
                f"the report lists more than {MAX_PDF_EVENTS} events: narrow 'from'/'to' for a PDF, or use CSV",
                [{"loc": ["from"], "msg": "period too long for a PDF", "type": "value_error"}],
            )
        report = await patient_access_report(audit, query.model_copy(update={"cursor": report["next_cursor"]}), reader)
        events.extend(report["events"])
    # A suspension of the right to an accounting is the service's record about
    # the patient, not an access; a document that may reach the patient must
    # not reveal it (§164.528(a)(2)). The JSON report keeps it for the officer.
    report["events"] = [e for e in events if not _suspension_record(e)]
    report["next_cursor"] = None
    report["period"] = {
        "from": format_timestamp(bound(query.from_, end=False)) if query.from_ is not None else None,
        "to": format_timestamp(bound(query.to, end=True)) if query.to is not None else None,
    }
    statement = await check_listed_events(audit, [e["seq"] for e in report["events"]])
    systems = {s["system_id"] for e in report["events"] for s in (e["source"], e["destination"])}
    entries = await registry_entries(audit, sorted(systems))
    names = {i: e["name"] for i, e in entries.items() if e.get("registered") and e.get("name")}
    pdf = patient_report_document(
        report, statement, generated_by=generated_by(reader), generated_at=_stamp(), names=names
    )
    await _record_document(audit, reader, query.identifier, "patient-access-report", pdf, statement)
    return pdf
