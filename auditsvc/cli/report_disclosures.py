"""``auditsvc report disclosures``: the accounting of disclosures (§164.528)
at the command line, and the PDF documents of ``report patient`` and
``report disclosures`` (``--format pdf --out FILE``).

Run as the operating-system user (``cli:<user>``) in the privacy officer's
role; the delivery of the accounting, and the making of each PDF, are
recorded in the chain as for the API.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..domain.disclosures import DisclosureQuery, disclosure_accounting
from ..domain.reports import PatientAccessQuery
from ..reports_pdf.make import accounting_pdf, patient_report_pdf
from ..runtime import AuditLog
from ._common import cli_caller, console, fail, with_audit_log
from ._reports import IdentifierOpt, OutOpt, as_json, day_or_timestamp, patient_identifier, validated, write_output


class DisclosureFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    PDF = "pdf"


def write_pdf(pdf: bytes, out: Path | None) -> None:
    if out is None:
        fail("--format pdf needs --out FILE")
    out.write_bytes(pdf)
    console.print(f"wrote {out}")


def patient_pdf(query: PatientAccessQuery, out: Path | None) -> None:
    """``report patient --format pdf``: every event, certified, as a document."""
    if out is None:
        fail("--format pdf needs --out FILE")
    write_pdf(with_audit_log(lambda audit: patient_report_pdf(audit, query, cli_caller())), out)


def render_accounting(report: dict[str, Any]) -> None:
    ids = ", ".join(f"{i['system']}|{i['value']}" for i in report["patient"]["identifiers"])
    console.print(f"[bold]Patient[/] identifiers linked: {ids}", highlight=False)
    period = report["period"]
    console.print(f"Period: {period['from'][:10]} to {period['to'][:10]} (as of {report['requested_at'][:10]})")
    table = Table(title="Accounting of disclosures (45 CFR 164.528)", title_justify="left")
    for column in ("first", "last", "count", "recipient", "address", "information disclosed", "purpose"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for e in report["entries"]:
        r = e["recipient"]
        table.add_row(
            e["first_date"][:10],
            e["last_date"][:10],
            str(e["count"]),
            f"{r['name']} ({r['system_id']})" if r["name"] else r["system_id"],
            r["address"] or "address not on file",
            e["description"],
            e["purpose"],
        )
    console.print(table)
    excluded = {reason: n for reason, n in report["excluded"].items() if n}
    console.print("Excluded: " + (", ".join(f"{reason} {n}" for reason, n in excluded.items()) or "none"))
    for s in report["suspended"]:
        console.print(
            f"[yellow]Suspended[/]: disclosures to {s['recipient_system_id']} withheld until {s['ends'][:10]}"
        )


def disclosures(
    identifier: IdentifierOpt,
    requested_at: Annotated[
        str | None, typer.Option("--requested-at", help="the request's date or timestamp (default: now)")
    ] = None,
    format_: Annotated[DisclosureFormat, typer.Option("--format", help="table, json or pdf")] = DisclosureFormat.TABLE,
    out: OutOpt = None,
) -> None:
    """The accounting of disclosures for one patient: the six years before the request."""
    body = {"identifier": patient_identifier(identifier)}
    query = validated(DisclosureQuery, {**body, "requested_at": day_or_timestamp(requested_at, "--requested-at")})
    if format_ is DisclosureFormat.PDF:
        if out is None:
            fail("--format pdf needs --out FILE")
        write_pdf(with_audit_log(lambda audit: accounting_pdf(audit, query, cli_caller())), out)
        return
    delivered = "json" if format_ is DisclosureFormat.JSON or out is not None else "table"

    async def account(audit: AuditLog) -> dict[str, Any]:
        return (await disclosure_accounting(audit, query, cli_caller(), delivered_as=delivered)).report

    report = with_audit_log(account)
    if format_ is DisclosureFormat.TABLE and out is None:
        render_accounting(report)
        return
    write_output(as_json(report), out)


def register(app: typer.Typer) -> None:
    """Add ``disclosures`` to ``auditsvc report``."""
    app.command("disclosures")(disclosures)
