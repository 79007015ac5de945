"""``auditsvc report system|actor|activity``: the by-system and by-actor
reports and the activity review record at the command line.

Run as the operating-system user (``cli:<user>``) in the privacy officer's
role; every page read is recorded in the chain as for the API. ``--format
csv`` streams one row per event (per activity for ``activity``) to the file
or stdout, page by page, in bounded memory.
"""

from __future__ import annotations

import csv
import getpass
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.table import Table

from ..api.csv_stream import EVENT_COLUMNS, event_row
from ..domain.access_reports import (
    ActorAccessQuery,
    SystemAccessQuery,
    access_report,
    access_report_records,
)
from ..domain.activity import ActivityQuery, activity_records, activity_report
from ..domain.errors import DomainError
from ..domain.tokens import Caller, Role
from ..runtime import AuditLog, open_audit_log
from ._common import console, database, fail, run, settings

M = TypeVar("M", bound=BaseModel)

ACTIVITY_COLUMNS = ("seq", "occurred_at", "activity", "actor_id", "actor_role", "actor_name", "channel", "details")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


FromOpt = Annotated[str | None, typer.Option("--from", help="first day or timestamp (inclusive)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="last day or timestamp (inclusive)")]
FormatOpt = Annotated[Format, typer.Option("--format", help="table, json or csv")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")]


def _date(raw: str | None, option: str) -> date | datetime | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        fail(f"{option} takes a date (2026-11-24) or an RFC 3339 timestamp with offset")


def _reader() -> Caller:
    return Caller(token_id=f"cli:{getpass.getuser()}", role=Role.PRIVACY_OFFICER, systems=(), name=None)


def _query(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))


async def _all_pages(
    page: Callable[[AuditLog, Any, Caller], Any], query: BaseModel, listed: str, audit: AuditLog
) -> dict[str, Any]:
    first: dict[str, Any] = await page(audit, query, _reader())  # the summary comes with the first page
    items, report = list(first[listed]), first
    while report["next_cursor"]:
        query = query.model_copy(update={"cursor": report["next_cursor"]})
        report = await page(audit, query, _reader())
        items.extend(report[listed])
        if "patients" in report:
            first["patients"].extend(report["patients"])
    first[listed] = items
    first["next_cursor"] = None
    return first


async def _csv(
    records: Callable[[AuditLog], Any], header: Sequence[str], to_row: Callable[[Any], Sequence[Any]], out: TextIO
) -> int:
    s = settings()
    async with open_audit_log(s, database(s), background=False) as audit:
        rows: AsyncIterator[Any] = await records(audit)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        n = 0
        async for item in rows:
            writer.writerow(to_row(item))
            n += 1
    return n


async def _json(page: Callable[[AuditLog, Any, Caller], Any], query: BaseModel, listed: str) -> dict[str, Any]:
    s = settings()
    async with open_audit_log(s, database(s), background=False) as audit:
        return await _all_pages(page, query, listed, audit)


def _emit(fmt: Format, out: Path | None, json_report: Callable[[], Any], csv_report: Callable[[TextIO], Any]) -> Any:
    """Run the report in ``fmt``; the JSON report for the table (returned)."""
    try:
        if fmt is Format.CSV:
            if out is None:
                return run(csv_report(sys.stdout))
            with out.open("w", encoding="utf-8", newline="") as handle:
                n = run(csv_report(handle))
            console.print(f"wrote {n} rows to {out}")
            return None
        report = run(json_report())
    except DomainError as exc:
        fail(exc.message)
    if fmt is Format.JSON or out is not None:
        text = json.dumps(report, indent=2, ensure_ascii=False)
        if out is None:
            print(text)
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"wrote {out}")
        return None
    return report


def _access(kind: str, query: SystemAccessQuery | ActorAccessQuery, fmt: Format, out: Path | None) -> None:
    async def as_csv(handle: TextIO) -> int:
        async def records(audit: AuditLog) -> AsyncIterator[dict[str, Any]]:
            return await access_report_records(audit, query, _reader(), "csv")

        return await _csv(records, EVENT_COLUMNS, event_row, handle)

    report = _emit(fmt, out, lambda: _json(access_report, query, "events"), as_csv)
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
    return {"from": _date(from_, "--from"), "to": _date(to, "--to"), "limit": 1000}


def system(
    system_id: Annotated[str, typer.Argument(help="the system id (as events name it)")],
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """What one system sent or received: patients, counterparts, data elements, events."""
    _access("system", _query(SystemAccessQuery, {"system_id": system_id, **_dates(from_, to)}), format_, out)


def actor(
    actor_id: Annotated[str, typer.Argument(help="the user or service id (the events' actor.id)")],
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """What one user or service accessed: patients, systems, data elements, events."""
    _access("actor", _query(ActorAccessQuery, {"actor_id": actor_id, **_dates(from_, to)}), format_, out)


def _activity_csv_row(row: dict[str, Any]) -> list[Any]:
    actor = row["actor"]
    details = " ".join(f"{k}={v}" for k, v in row["details"].items())
    return [row["seq"], row["occurred_at"], row["activity"], actor.get("id"), actor.get("role", ""),
            actor.get("name", ""), row["channel"], details]  # fmt: skip


def activity(from_: FromOpt = None, to: ToOpt = None, format_: FormatOpt = Format.TABLE, out: OutOpt = None) -> None:
    """Who ran which report, export or review, and when: the record that the log is examined."""
    query = _query(ActivityQuery, _dates(from_, to))

    async def as_csv(handle: TextIO) -> int:
        async def records(audit: AuditLog) -> AsyncIterator[dict[str, Any]]:
            return await activity_records(audit, query, _reader())

        return await _csv(records, ACTIVITY_COLUMNS, _activity_csv_row, handle)

    report = _emit(format_, out, lambda: _json(activity_report, query, "activity"), as_csv)
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
