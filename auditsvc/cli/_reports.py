"""What the ``auditsvc report`` commands share: their date, identifier and
output options, and where their answer goes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from ..domain.tokens import Caller
from ..runtime import AuditLog
from ._common import cli_caller, console, fail

M = TypeVar("M", bound=BaseModel)


class Format(StrEnum):
    """A report's output: a table on the terminal, or JSON or CSV text."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


FormatOpt = Annotated[Format, typer.Option("--format", help="table, json or csv")]
FromOpt = Annotated[str | None, typer.Option("--from", help="first day or timestamp (inclusive)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="last day or timestamp (inclusive)")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")]
IdentifierOpt = Annotated[str, typer.Option(help="SYSTEM|VALUE of any one of the patient's identifiers")]


def day_or_timestamp(raw: str | None, option: str) -> date | datetime | None:
    """A date option: a day (2026-11-24) or an RFC 3339 timestamp."""
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        fail(f"{option} takes a date (2026-11-24) or an RFC 3339 timestamp with offset")


def patient_identifier(raw: str) -> dict[str, str]:
    """``--identifier SYSTEM|VALUE`` as a request's identifier."""
    system, sep, value = raw.rpartition("|")
    if not sep or not system or not value:
        fail("--identifier takes SYSTEM|VALUE, e.g. 'urn:oid:2.16.840.1.113883.3.1|MRN00042'")
    return {"system": system, "value": value}


def validated(model: type[M], body: dict[str, Any]) -> M:
    """The report request from the options; invalid ones named and refused."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def write_output(text: str, out: Path | None, *, end: str = "\n") -> None:
    """The report's text to ``out``, or to stdout (ended by ``end``)."""
    if out is None:
        print(text, end=end)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


Page = Callable[[AuditLog, Any, Caller], Awaitable[dict[str, Any]]]


async def all_pages(audit: AuditLog, page: Page, query: BaseModel, listed: str) -> dict[str, Any]:
    """The whole report, following its cursors: the first page (the summary
    comes with it) with the ``listed`` items, and any ``patients``, of every
    page."""
    first: dict[str, Any] = await page(audit, query, cli_caller())
    items, report = list(first[listed]), first
    while report["next_cursor"]:
        query = query.model_copy(update={"cursor": report["next_cursor"]})
        report = await page(audit, query, cli_caller())
        items.extend(report[listed])
        if "patients" in report:
            first["patients"].extend(report["patients"])
    first[listed] = items
    first["next_cursor"] = None
    return first
