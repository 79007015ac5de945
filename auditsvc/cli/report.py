"""``auditsvc report patient``: the patient-access report at the command line."""

from __future__ import annotations

import csv
import getpass
import io
import json
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ..domain.errors import DomainError
from ..domain.reports import PatientAccessQuery, patient_access_report
from ..domain.tokens import Caller, Role
from ..runtime import open_audit_log
from . import report_coverage
from ._common import console, database, fail, run, settings
from .report_access import register as register_access_reports
from .report_break_glass import break_glass
from .report_disclosures import patient_pdf
from .report_disclosures import register as register_disclosures

app = typer.Typer(help="Reports for privacy officers.", no_args_is_help=True)
register_access_reports(app)  # system, actor, activity (cli/report_access.py)
register_disclosures(app)  # disclosures, and the PDFs (cli/report_disclosures.py)
app.command("coverage")(report_coverage.coverage)
app.command("break-glass")(break_glass)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


def _parse_identifier(raw: str) -> tuple[str, str]:
    system, sep, value = raw.rpartition("|")
    if not sep or not system or not value:
        fail("--identifier takes SYSTEM|VALUE, e.g. 'urn:oid:2.16.840.1.113883.3.1|MRN00042'")
    return system, value


def _date(raw: str | None, option: str) -> date | datetime | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        fail(f"{option} takes a date (2026-11-24) or an RFC 3339 timestamp with offset")


async def _full_report(query: PatientAccessQuery, url: str) -> dict[str, Any]:
    s = settings()
    reader = Caller(token_id=f"cli:{getpass.getuser()}", role=Role.PRIVACY_OFFICER, systems=(), name=None)
    async with open_audit_log(s, url, background=False) as audit:
        report = await patient_access_report(audit, query, reader)
        events = list(report["events"])
        while report["next_cursor"]:
            query = query.model_copy(update={"cursor": report["next_cursor"]})
            report = await patient_access_report(audit, query, reader)
            events.extend(report["events"])
    report["events"] = events
    report["next_cursor"] = None
    return report


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


@app.command("patient")
def patient(
    identifier: Annotated[str, typer.Option(help="SYSTEM|VALUE of any one of the patient's identifiers")],
    from_: Annotated[str | None, typer.Option("--from", help="first day or timestamp (inclusive)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="last day or timestamp (inclusive)")] = None,
    format_: Annotated[Format, typer.Option("--format", help="table, json, csv or pdf (with --out)")] = Format.TABLE,
    out: Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")] = None,
) -> None:
    """Every system that accessed the patient's record, by any linked identifier."""
    system, value = _parse_identifier(identifier)
    try:
        query = PatientAccessQuery.model_validate(
            {
                "identifier": {"system": system, "value": value},
                "from": _date(from_, "--from"),
                "to": _date(to, "--to"),
                "limit": 1000,
            }
        )
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    if format_ is Format.PDF:
        return patient_pdf(query, out)
    url = database(settings())
    try:
        report = run(_full_report(query, url))
    except DomainError as exc:
        fail(exc.message)
    if format_ is Format.TABLE and out is None:
        render_table(report)
        return
    text = json.dumps(report, indent=2, ensure_ascii=False) if format_ is not Format.CSV else _csv(report)
    if format_ is Format.TABLE:
        text = json.dumps(report, indent=2, ensure_ascii=False)
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
