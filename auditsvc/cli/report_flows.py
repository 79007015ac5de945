"""``auditsvc report flows`` and ``auditsvc report baa-gaps``: the PHI flow
map and the flows into or through parties without an effective BAA."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..domain.flows import (
    FLOW_CSV_COLUMNS,
    GAP_CSV_COLUMNS,
    FlowQuery,
    GapQuery,
    baa_gap_report,
    csv_text,
    flow_csv_row,
    flow_report,
    gap_csv_row,
)
from ..reports_pdf.flows import committee_report_pdf, gaps_pdf
from ..runtime import AuditLog
from ._common import cli_caller, console, fail, with_audit_log
from ._reports import FromOpt, OutOpt, ToOpt, as_json, validated, write_output


class FlowFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


FlowFormatOpt = Annotated[FlowFormat, typer.Option("--format", help="table, json, csv or pdf (needs --out)")]


def _when(stamp: str | None) -> str:
    return stamp[:16].replace("T", " ") if stamp else ""


def _states(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def render_flows(report: dict[str, Any]) -> None:
    period = report["period"]
    table = Table(title=f"PHI flows {period['from'][:10]} - {period['to'][:10]} (times UTC)", title_justify="left")
    for column in ("source", "destination", "events", "first", "last", "destination party", "BAA by events"):
        table.add_column(column)
    for f in report["flows"]:
        d = f["destination"]
        who = d["organization"] or d["name"] or "(unregistered)"
        states = _states(d["baa_events"])
        table.add_row(
            escape(f["source_system"]), escape(f["destination_system"]), str(f["events"]), _when(f["first_seen"]),
            _when(f["last_seen"]), escape(f"{who} ({d['relationship'] or '-'})"),
            f"[bold red]{escape(states)}[/]" if f["uncovered_events"] else escape(states),
        )  # fmt: skip
    console.print(table)


def render_gaps(report: dict[str, Any]) -> None:
    table = Table(title="BAA gaps", title_justify="left")
    for column in ("kind", "reason", "party", "flow", "events", "patients", "first", "last"):
        table.add_column(column)
    for g in report["gaps"]:
        flow = f"{g['source_system']} -> {g['destination_system']}" if g["source_system"] else "(no flow)"
        party = g["party"]["organization"] or g["party"]["system_id"]
        table.add_row(
            g["kind"], g["reason"], escape(f"{party} ({g['party_side']})"), escape(flow), str(g["events"]),
            str(g["patients"]), _when(g["first_event"]), _when(g["last_event"]),
        )  # fmt: skip
    console.print(table)


def _pdf_out(document: bytes, out: Path | None) -> None:
    if out is None:
        fail("--format pdf needs --out FILE")
    out.write_bytes(document)
    console.print(f"wrote {out}")


def flows(
    from_: FromOpt = None, to: ToOpt = None, format_: FlowFormatOpt = FlowFormat.TABLE, out: OutOpt = None
) -> None:
    """The PHI flow map: every source -> destination pair with its parties and their BAA on each day.
    --format pdf: the compliance committee's report (map, gaps, changes since the last one)."""
    query = validated(FlowQuery, {k: v for k, v in {"from": from_, "to": to}.items() if v is not None})
    if format_ is FlowFormat.PDF and out is None:
        fail("--format pdf needs --out FILE")

    async def _run(audit: AuditLog) -> Any:
        if format_ is FlowFormat.PDF:
            return await committee_report_pdf(audit, query, cli_caller())
        return await flow_report(audit, query, cli_caller())

    report = with_audit_log(_run)
    if format_ is FlowFormat.PDF:
        _pdf_out(report, out)
    elif format_ is FlowFormat.TABLE and out is None:
        render_flows(report)
    elif format_ is FlowFormat.CSV:
        write_output(csv_text(FLOW_CSV_COLUMNS, report["flows"], flow_csv_row), out, end="")
    else:
        write_output(as_json(report), out)


def baa_gaps(
    from_: FromOpt = None,
    to: ToOpt = None,
    expiring_within_days: Annotated[int, typer.Option(min=0, max=3650, help="BAAs expiring this soon")] = 30,
    format_: FlowFormatOpt = FlowFormat.TABLE,
    out: OutOpt = None,
) -> None:
    """Flows into or through parties without an effective BAA, into unregistered systems; BAAs expiring."""
    body = {k: v for k, v in {"from": from_, "to": to}.items() if v is not None}
    query = validated(GapQuery, {**body, "expiring_within_days": expiring_within_days})
    if format_ is FlowFormat.PDF and out is None:
        fail("--format pdf needs --out FILE")

    async def _run(audit: AuditLog) -> Any:
        if format_ is FlowFormat.PDF:
            return await gaps_pdf(audit, query, cli_caller())
        return await baa_gap_report(audit, query, cli_caller())

    report = with_audit_log(_run)
    if format_ is FlowFormat.PDF:
        _pdf_out(report, out)
    elif format_ is FlowFormat.TABLE and out is None:
        render_gaps(report)
    elif format_ is FlowFormat.CSV:
        write_output(csv_text(GAP_CSV_COLUMNS, report["gaps"], gap_csv_row), out, end="")
    else:
        write_output(as_json(report), out)
