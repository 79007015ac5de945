"""``auditsvc report patient``: the patient-access report at the command line."""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from ..domain.fhir.bundle import searchset
from ..domain.fhir.outcome import FhirError
from ..domain.fhir.search import every_match
from ..domain.fhir.search_params import escape
from ..domain.reports import PatientAccessQuery, patient_access_report
from ..runtime import AuditLog
from . import report_coverage, report_flows
from ._common import cli_caller, console, fail, with_audit_log
from ._reports import (
    FromOpt,
    IdentifierOpt,
    OutOpt,
    ToOpt,
    all_pages,
    as_json,
    day_or_timestamp,
    patient_identifier,
    validated,
    write_output,
)
from .report_access import register as register_access_reports
from .report_break_glass import break_glass
from .report_disclosures import patient_pdf
from .report_disclosures import register as register_disclosures

app = typer.Typer(help="Reports for privacy officers.", no_args_is_help=True)
register_access_reports(app)  # system, actor, activity (cli/report_access.py)
register_disclosures(app)  # disclosures, and the PDFs (cli/report_disclosures.py)
app.command("coverage")(report_coverage.coverage)
app.command("break-glass")(break_glass)
app.command("flows")(report_flows.flows)
app.command("baa-gaps")(report_flows.baa_gaps)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"
    FHIR = "fhir"


def _csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "system_id",
            "count",
            "as_source",
            "as_destination",
            "first_access",
            "last_access",
            "actions",
            "data_elements",
            "actors",
        ]
    )
    for row in report["systems"]:
        writer.writerow(
            [
                row["system_id"],
                row["count"],
                row["as_source"],
                row["as_destination"],
                row["first_access"],
                row["last_access"],
                " ".join(row["actions"]),
                " ".join(row["data_elements"]),
                " ".join(a["id"] for a in row["actors"]),
            ]
        )
    return out.getvalue()


def _when(stamp: str) -> str:
    return stamp[:16].replace("T", " ")


def _some(items: list[str], shown: int) -> str:
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown})" if len(items) > shown else "")


def render_table(report: dict[str, Any]) -> None:
    ids = ", ".join(f"{i['system']}|{i['value']}" for i in report["patient"]["identifiers"])
    console.print(f"[bold]Patient[/] identifiers linked: {ids}", highlight=False)
    table = Table(title="Systems that accessed this patient's record (times UTC)", title_justify="left")
    table.add_column("system", no_wrap=True)
    table.add_column("events", justify="right")
    table.add_column("src/dst", justify="right", no_wrap=True)
    table.add_column("first access", no_wrap=True)
    table.add_column("last access", no_wrap=True)
    table.add_column("actions", no_wrap=True)
    table.add_column("actors")
    table.add_column("data elements")
    for row in report["systems"]:
        table.add_row(
            row["system_id"],
            str(row["count"]),
            f"{row['as_source']}/{row['as_destination']}",
            _when(row["first_access"]),
            _when(row["last_access"]),
            "".join(row["actions"]),
            _some([a["id"] for a in row["actors"]], 2),
            _some(row["data_elements"], 4),
        )
    console.print(table)
    console.print(f"{len(report['events'])} access events in range.")


async def patient_bundle(audit: AuditLog, identifier: str, from_: str | None, to: str | None) -> dict[str, Any]:
    """The searchset Bundle ``GET /fhir/AuditEvent?patient.identifier=...&date=...``
    answers, every page of it in one Bundle (each page recorded in the chain)."""
    wanted = patient_identifier(identifier)
    params = [("patient.identifier", f"{escape(wanted['system'])}|{escape(wanted['value'])}")]
    params += [("date", f"ge{from_}" if from_ else "ge0001"), *([("date", f"le{to}")] if to else [])]
    try:
        resources = await every_match(audit, params, cli_caller())
    except FhirError as exc:
        fail(str(exc))
    return searchset(None, resources, self_url=None, next_url=None)


@app.command("patient")
def patient(
    identifier: IdentifierOpt,
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: Annotated[
        Format, typer.Option("--format", help="table, json, csv, fhir (a searchset Bundle) or pdf (with --out)")
    ] = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """Every system that accessed the patient's record, by any linked identifier."""
    body = {"identifier": patient_identifier(identifier), "limit": 1000}
    query = validated(
        PatientAccessQuery, {**body, "from": day_or_timestamp(from_, "--from"), "to": day_or_timestamp(to, "--to")}
    )
    if format_ is Format.PDF:
        return patient_pdf(query, out)
    if format_ is Format.FHIR:
        return write_output(as_json(with_audit_log(lambda audit: patient_bundle(audit, identifier, from_, to))), out)
    report = with_audit_log(lambda audit: all_pages(audit, patient_access_report, query, "events"))
    if format_ is Format.TABLE and out is None:
        render_table(report)
        return
    write_output(_csv(report) if format_ is Format.CSV else as_json(report), out)
