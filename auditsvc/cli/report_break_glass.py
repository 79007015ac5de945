"""``auditsvc report break-glass`` (the queue) and ``auditsvc review`` (a verdict)
at the command line. Both act as a privacy officer named after the
operating-system user, and both are recorded in the chain as the API's are."""

from __future__ import annotations

import getpass
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from ..domain.errors import DomainError
from ..domain.reviews import (
    QueueQuery,
    ReviewConfig,
    ReviewRequest,
    break_glass_queue,
    record_review,
)
from ..domain.reviews_csv import queue_csv
from ..domain.tokens import Caller, Role
from ..runtime import open_audit_log
from ._common import console, database, fail, run, settings


class QueueStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"
    ALL = "all"
    OVERDUE = "overdue"


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class VerdictOption(StrEnum):
    APPROPRIATE = "appropriate"
    INAPPROPRIATE = "inappropriate"
    INVESTIGATE = "investigate"


def _officer() -> Caller:
    return Caller(token_id=f"cli:{getpass.getuser()}", role=Role.PRIVACY_OFFICER, systems=(), name=None)


async def _whole_queue(query: QueueQuery, url: str) -> dict[str, Any]:
    s = settings()
    async with open_audit_log(s, url, background=False) as audit:
        config = ReviewConfig.from_settings(s)
        page = await break_glass_queue(audit, query, _officer(), config)
        items = list(page["items"])
        while page["next_cursor"]:
            page = await break_glass_queue(
                audit, query.model_copy(update={"cursor": page["next_cursor"]}), _officer(), config
            )
            items.extend(page["items"])
    return {**page, "items": items, "next_cursor": None}


def render_table(report: dict[str, Any]) -> None:
    title = f"Break-glass accesses: {report['status']}"
    if report["older_than"] is not None:
        title += f", at least {report['older_than']} days old"
    table = Table(title=f"{title} (times UTC; review window {report['review_days']} days)", title_justify="left")
    for column in ("occurred", "event", "system", "actor", "patient", "verdict", "reviewed", "overdue"):
        table.add_column(column, no_wrap=column not in ("patient",))
    for item in report["items"]:
        event, review = item["event"], item["review"] or {}
        ids = ", ".join(f"{i['system']}|{i['value']}" for i in event["patient"]["identifiers"][:2])
        table.add_row(
            event["occurred_at"][:16].replace("T", " "),
            event["event_id"],
            event["source"]["system_id"],
            event["actor"]["id"],
            ids,
            item["verdict"] or "-",
            f"{str(review.get('reviewed_at', ''))[:10]} ({len(item['history'])})" if review else "-",
            "OVERDUE" if item["overdue"] else "",
        )
    console.print(table)
    console.print(f"{len(report['items'])} break-glass accesses listed.")


def break_glass(
    status: Annotated[QueueStatus, typer.Option(help="unreviewed, reviewed, all, or overdue")] = QueueStatus.UNREVIEWED,
    older_than: Annotated[
        int | None, typer.Option("--older-than", min=0, help="only accesses at least DAYS old")
    ] = None,
    from_: Annotated[str | None, typer.Option("--from", help="first day or timestamp (inclusive)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="last day or timestamp (inclusive)")] = None,
    format_: Annotated[Format, typer.Option("--format", help="table, json or csv")] = Format.TABLE,
    out: Annotated[Path | None, typer.Option("--out", help="write to this file instead of stdout")] = None,
) -> None:
    """The break-glass review queue: emergency accesses with their latest verdict."""
    params = {"status": status.value, "older_than": older_than, "from": from_, "to": to, "limit": 500}
    try:
        query = QueueQuery.model_validate({k: v for k, v in params.items() if v is not None})
    except ValueError as exc:
        fail(f"invalid option: {exc}".splitlines()[0] + " (dates: 2026-11-24 or an RFC 3339 timestamp with offset)")
    url = database(settings())
    try:
        report = run(_whole_queue(query, url))
    except DomainError as exc:
        fail(exc.message)
    if format_ is Format.TABLE and out is None:
        render_table(report)
        return
    text = queue_csv(report["items"]) if format_ is Format.CSV else json.dumps(report, indent=2, ensure_ascii=False)
    if out is None:
        print(text, end="" if format_ is Format.CSV else "\n")
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


async def _review(request: ReviewRequest, url: str) -> dict[str, Any]:
    async with open_audit_log(settings(), url, background=False) as audit:
        return await record_review(audit, request, _officer())


def review(
    event_id: Annotated[str, typer.Argument(help="the break-glass event's event_id")],
    verdict: Annotated[VerdictOption, typer.Option(help="appropriate, inappropriate or investigate")],
    notes: Annotated[str, typer.Option(help="the reviewer's notes (at most 1000 characters)")] = "",
) -> None:
    """Record a verdict on a break-glass access; a later review of the same event supersedes it."""
    try:
        request = ReviewRequest.model_validate({"event_id": event_id, "verdict": verdict.value, "notes": notes})
    except ValueError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in cast(Any, exc).errors())
        fail(f"invalid {fields}")
    url = database(settings())
    try:
        answer = run(_review(request, url))
    except DomainError as exc:
        fail(exc.message)
    recorded = answer["review"]
    console.print(
        f"recorded [bold]{recorded['verdict']}[/] for {answer['event']['event_id']} "
        f"as event {recorded['review_event_id']} (seq {recorded['seq']})",
        highlight=False,
    )
    if recorded["supersedes"]:
        console.print(f"supersedes review {recorded['supersedes']}", highlight=False)
