"""``auditsvc report break-glass`` (the queue) and ``auditsvc review`` (a verdict)
at the command line. Both act as a privacy officer named after the
operating-system user, and both are recorded in the chain as the API's are."""

from __future__ import annotations

from collections.abc import Awaitable
from enum import StrEnum
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from ..domain.reviews import (
    QueueQuery,
    ReviewConfig,
    ReviewRequest,
    break_glass_queue,
    record_review,
)
from ..domain.reviews_csv import queue_csv
from ..domain.tokens import Caller
from ..runtime import AuditLog
from ._common import cli_caller, console, fail, settings, with_audit_log
from ._reports import Format, FormatOpt, FromOpt, OutOpt, ToOpt, all_pages, as_json, write_output


class QueueStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"
    ALL = "all"
    OVERDUE = "overdue"


class VerdictOption(StrEnum):
    APPROPRIATE = "appropriate"
    INAPPROPRIATE = "inappropriate"
    INVESTIGATE = "investigate"


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
    from_: FromOpt = None,
    to: ToOpt = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """The break-glass review queue: emergency accesses with their latest verdict."""
    params = {"status": status.value, "older_than": older_than, "from": from_, "to": to, "limit": 500}
    try:
        query = QueueQuery.model_validate({k: v for k, v in params.items() if v is not None})
    except ValueError as exc:
        fail(f"invalid option: {exc}".splitlines()[0] + " (dates: 2026-11-24 or an RFC 3339 timestamp with offset)")
    config = ReviewConfig.from_settings(settings())

    def queue_page(audit: AuditLog, page: QueueQuery, reader: Caller) -> Awaitable[dict[str, Any]]:
        return break_glass_queue(audit, page, reader, config)

    report = with_audit_log(lambda audit: all_pages(audit, queue_page, query, "items"))
    if format_ is Format.TABLE and out is None:
        render_table(report)
        return
    if format_ is Format.CSV:
        write_output(queue_csv(report["items"]), out, end="")
    else:
        write_output(as_json(report), out)


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
    answer = with_audit_log(lambda audit: record_review(audit, request, cli_caller()))
    recorded = answer["review"]
    console.print(
        f"recorded [bold]{recorded['verdict']}[/] for {answer['event']['event_id']} "
        f"as event {recorded['review_event_id']} (seq {recorded['seq']})",
        highlight=False,
    )
    if recorded["supersedes"]:
        console.print(f"supersedes review {recorded['supersedes']}", highlight=False)
