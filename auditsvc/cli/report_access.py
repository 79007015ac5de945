"""``auditsvc report system|actor|activity``: the by-system and by-actor
reports and the activity review record at the command line.

Run as the operating-system user (``cli:<user>``) in the privacy officer's
role; every page read is recorded in the chain as for the API. ``--format
csv`` streams one row per event (per activity for ``activity``) to the file
or stdout, page by page, in bounded memory.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.table import Table

from ..api.csv_stream import EVENT_COLUMNS, event_row
from ..domain.access_reports import (
    ActorAccessQuery,
    SystemAccessQuery,
    access_report,
    access_report_records,
)
from ..domain.activity import ActivityQuery, activity_records, activity_report
from ..runtime import AuditLog
from ._common import cli_caller, console, with_audit_log
from ._reports import (
    Format,
    FormatOpt,
    FromOpt,
    OutOpt,
    ToOpt,
    all_pages,
    as_json,
    day_or_timestamp,
    validated,
    write_output,
)

ACTIVITY_COLUMNS = ("seq", "occurred_at", "activity", "actor_id", "actor_role", "actor_name", "channel", "details")


async def _csv(
    rows: AsyncIterator[Any], header: Sequence[str], to_row: Callable[[Any], Sequence[Any]], out: TextIO
) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    n = 0
    async for item in rows:
        writer.writerow(to_row(item))
        n += 1
    return n


def _emit(
    fmt: Format,
    out: Path | None,
    json_report: Callable[[AuditLog], Awaitable[dict[str, Any]]],
    csv_report: Callable[[AuditLog, TextIO], Awaitable[int]],
) -> dict[str, Any] | None:
    """Run the report in ``fmt``; the JSON report for the table (returned)."""
    if fmt is Format.CSV:
        if out is None:
            with_audit_log(lambda audit: csv_report(audit, sys.stdout))
            return None
        with out.open("w", encoding="utf-8", newline="") as handle:
            n = with_audit_log(lambda audit: csv_report(audit, handle))
        console.print(f"wrote {n} rows to {out}")
        return None
    report = with_audit_log(json_report)
    if fmt is Format.JSON or out is not None:
        write_output(as_json(report), out)
        return None
    return report


def _access(kind: str, query: SystemAccessQuery | ActorAccessQuery, fmt: Format, out: Path | None) -> None:
    async def as_csv(audit: AuditLog, handle: TextIO) -> int:
        rows = await access_report_records(audit, query, cli_caller(), "csv")
        return await _csv(rows, EVENT_COLUMNS, event_row, handle)

    report = _emit(fmt, out, lambda audit: all_pages(audit, access_report, query, "events"), as_csv)
    if report is not None:
        render_access(kind, report)


def render_access(kind: str, report: dict[str, Any]) -> None:
    subject = report.get("system") or report.get("actor") or {}
    if kind == "system":
        name = subject.get("name") or "unregistered"
        console.print(f"[bold]System[/] {subject.get('system_id')} ({name})", highlight=False)
    else:
        console.print(f"[bold]Actor[/] {subject.get('actor_id')}", highlight=False)
    summary = report["summary"]
    covered = "" if summary["complete"] else f" (summary of the first {summary['events']:,} events)"
    console.print(f"{report['patient_count']} patients, {len(report['events'])} events{covered}.")
    console.print("Data elements: " + ", ".join(report["data_elements"]), highlight=False)
    table = Table(title="Counterparts" if kind == "system" else "Systems", title_justify="left")
    for column in ("system", "events", "as source", "as destination"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for c in report["counterparts"]:
        table.add_row(c["system_id"], str(c["count"]), str(c["as_source"]), str(c["as_destination"]))
    console.print(table)


def _dates(from_: str | None, to: str | None) -> dict[str, Any]:
    return {"from": day_or_timestamp(from_, "--from"), "to": day_or_timestamp(to, "--to"), "limit": 1000}


def system(
    system_id: Annotated[str, typer.Argument(help="the system id (as events name it)")],
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """What one system sent or received: patients, counterparts, data elements, events."""
    _access("system", validated(SystemAccessQuery, {"system_id": system_id, **_dates(from_, to)}), format_, out)


def actor(
    actor_id: Annotated[str, typer.Argument(help="the user or service id (the events' actor.id)")],
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """What one user or service accessed: patients, systems, data elements, events."""
    _access("actor", validated(ActorAccessQuery, {"actor_id": actor_id, **_dates(from_, to)}), format_, out)


def _activity_csv_row(row: dict[str, Any]) -> list[Any]:
    actor = row["actor"]
    details = " ".join(f"{k}={v}" for k, v in row["details"].items())
    return [row["seq"], row["occurred_at"], row["activity"], actor.get("id"), actor.get("role", ""),
            actor.get("name", ""), row["channel"], details]  # fmt: skip


def activity(from_: FromOpt = None, to: ToOpt = None, format_: FormatOpt = Format.TABLE, out: OutOpt = None) -> None:
    """Who ran which report, export or review, and when: the record that the log is examined."""
    query = validated(ActivityQuery, _dates(from_, to))

    async def as_csv(audit: AuditLog, handle: TextIO) -> int:
        return await _csv(
            await activity_records(audit, query, cli_caller()), ACTIVITY_COLUMNS, _activity_csv_row, handle
        )

    report = _emit(format_, out, lambda audit: all_pages(audit, activity_report, query, "activity"), as_csv)
    if report is None:
        return
    table = Table(title="Reports, exports and reviews (times UTC)", title_justify="left")
    for column in ("when", "activity", "who", "role", "details"):
        table.add_column(column)
    for row in report["activity"]:
        details = " ".join(f"{k}={v}" for k, v in row["details"].items())
        who = row["actor"].get("name") or row["actor"].get("id", "")
        table.add_row(row["occurred_at"][:19].replace("T", " "), row["activity"], who, row["channel"], details)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the commands to ``auditsvc report``."""
    app.command("system")(system)
    app.command("actor")(actor)
    app.command("activity")(activity)
