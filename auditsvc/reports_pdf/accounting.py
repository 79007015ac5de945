"""The accounting of disclosures as a document for the patient (§164.528).

It lists what the patient is entitled to see and nothing else: not the
counts of excluded disclosures (some exclusions, such as national security,
must not be revealed) and not suspensions (telling the patient that an
agency asked for one could impede the agency's activities). Those are in
the privacy officer's JSON answer.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from reportlab.platypus import Flowable, Spacer

from ..domain.report_integrity import IntegrityStatement
from .layout import BODY, CELL, HEADING, SMALL, TITLE, day, integrity_section, marked, render, table, text


def _dates(entry: dict[str, Any]) -> str:
    if entry["count"] == 1:
        return day(entry["first_date"])
    return f"{day(entry['first_date'])} to {day(entry['last_date'])}"


def _recipient(entry: dict[str, Any]) -> Flowable:
    r = entry["recipient"]
    name = escape(r["name"] or r["system_id"])
    address = escape(r["address"]) if r["address"] else "<i>address not on file</i>"
    return marked(f"<b>{name}</b><br/>{address}", CELL)


def _identifiers(report: dict[str, Any]) -> list[Flowable]:
    ids = report["patient"]["identifiers"]
    return [text(f"{i['value']} (issued by {i['system']})", BODY) for i in ids]


def accounting_document(
    report: dict[str, Any], statement: IntegrityStatement, *, generated_by: str, generated_at: str
) -> bytes:
    """The PDF of one accounting (``report`` as domain/disclosures.py answers it)."""
    entries = report["entries"]
    total = sum(e["count"] for e in entries)
    recipients = len({e["recipient"]["system_id"] for e in entries})
    story: list[Flowable] = [
        text("Accounting of disclosures of your health information", TITLE),
        text(
            "This is the list of disclosures of your protected health information that we are required to account "
            "for under the HIPAA Privacy Rule (45 CFR 164.528).",
        ),
        text("Patient", HEADING),
        *_identifiers(report),
        text("Period covered", HEADING),
        text(
            f"From {day(report['period']['from'])} to {day(report['period']['to'])}: the six years before your "
            f"request of {day(report['requested_at'])}.",
        ),
        text("Disclosures", HEADING),
    ]
    if entries:
        story.append(
            text(
                f"{total} disclosure{'s' if total != 1 else ''} to {recipients} recipient"
                f"{'s' if recipients != 1 else ''}. Repeated disclosures to the same recipient for the same "
                "purpose are shown once, with the first and last date and their number.",
            )
        )
        story.append(Spacer(1, 4))
        rows = [[_dates(e), _recipient(e), e["description"], e["purpose"], str(e["count"])] for e in entries]
        story.append(
            table(
                ["Date(s)", "Recipient and address", "Information disclosed", "Purpose", "Number"],
                rows,
                [0.17, 0.25, 0.31, 0.18, 0.09],
            )
        )
    else:
        story.append(text("There are no disclosures of your health information to account for in this period."))
    story += [
        Spacer(1, 6),
        text(
            "Not listed, as the rule provides: disclosures for your treatment, for payment and for health care "
            "operations; disclosures to you or at your request; disclosures you authorized in writing; and the "
            "other disclosures excepted by 45 CFR 164.528(a).",
            SMALL,
        ),
        *integrity_section(statement, "disclosure"),
    ]
    footer = f"Accounting of disclosures - generated {generated_at} by {generated_by}"
    return render(story, title="Accounting of disclosures", footer=footer)
