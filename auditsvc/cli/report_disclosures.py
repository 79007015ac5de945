"""``auditsvc report disclosures``: the accounting of disclosures (§164.528)
at the command line, and the PDF documents of ``report patient`` and
``report disclosures`` (``--format pdf --out FILE``).

Run as the operating-system user (``cli:<user>``) in the privacy officer's
role; the delivery of the accounting, and the making of each PDF, are
recorded in the chain as for the API.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table

from ..domain.disclosures import DisclosureQuery, disclosure_accounting
from ..domain.errors import DomainError
from ..domain.reports import PatientAccessQuery
from ..domain.tokens import Caller, Role
from ..reports_pdf.make import accounting_pdf, patient_report_pdf
from ..runtime import AuditLog, open_audit_log
from ._common import console, database, fail, run, settings

T = TypeVar("T")


class DisclosureFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    PDF = "pdf"


def _reader() -> Caller:
    return Caller(token_id=f"cli:{getpass.getuser()}", role=Role.PRIVACY_OFFICER, systems=(), name=None)


def _with_log(work: Callable[[AuditLog], Awaitable[T]]) -> T:
    s = settings()
    url = database(s)

    async def go() -> T:
        async with open_audit_log(s, url, background=False) as audit:
            return await work(audit)

    try:
        return run(go())
    except DomainError as exc:
        fail(exc.message)


def write_pdf(pdf: bytes, out: Path | None) -> None:
    if out is None:
        fail("--format pdf needs --out FILE")
    out.write_bytes(pdf)
    console.print(f"wrote {out}")


def patient_pdf(query: PatientAccessQuery, out: Path | None) -> None:
    """``report patient --format pdf``: every event, certified, as a document."""
    if out is None:
        fail("--format pdf needs --out FILE")
    write_pdf(_with_log(lambda audit: patient_report_pdf(audit, query, _reader())), out)


def _requested(raw: str | None) -> date | datetime | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        fail("--requested-at takes a date (2026-11-24) or an RFC 3339 timestamp with offset")


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
    identifier: Annotated[str, typer.Option(help="SYSTEM|VALUE of any one of the patient's identifiers")],
    requested_at: Annotated[
        str | None, typer.Option("--requested-at", help="the request's date or timestamp (default: now)")
    ] = None,
    format_: Annotated[DisclosureFormat, typer.Option("--format", help="table, json or pdf")] = DisclosureFormat.TABLE,
    out: Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")] = None,
) -> None:
    """The accounting of disclosures for one patient: the six years before the request."""
    system, sep, value = identifier.rpartition("|")
    if not sep or not system or not value:
        fail("--identifier takes SYSTEM|VALUE, e.g. 'urn:oid:2.16.840.1.113883.3.1|MRN00042'")
    try:
        query = DisclosureQuery.model_validate(
            {"identifier": {"system": system, "value": value}, "requested_at": _requested(requested_at)}
        )
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    if format_ is DisclosureFormat.PDF:
        if out is None:
            fail("--format pdf needs --out FILE")
        write_pdf(_with_log(lambda audit: accounting_pdf(audit, query, _reader())), out)
        return
    delivered = "json" if format_ is DisclosureFormat.JSON or out is not None else "table"

    async def account(audit: AuditLog) -> dict[str, Any]:
        return (await disclosure_accounting(audit, query, _reader(), delivered_as=delivered)).report

    report = _with_log(account)
    if format_ is DisclosureFormat.TABLE and out is None:
        render_accounting(report)
        return
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``disclosures`` to ``auditsvc report``."""
    app.command("disclosures")(disclosures)
