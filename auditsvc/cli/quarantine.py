"""``auditsvc quarantine list|show|replay|discard``: ATNA syslog messages that
could not be mapped (domain/quarantine.py, docs/atna.md).

Run on the server as an admin: the operating-system user (``cli:<user>``)
is the admin recorded in the chain when ``show --reveal`` opens a message.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..domain.quarantine import (
    ReplayOutcome,
    discard_entry,
    list_quarantine,
    replay_entry,
    select_for_replay,
    show_quarantined,
)
from ..domain.tokens import Role
from ..runtime import AuditLog
from ._common import cli_caller, console, fail, with_audit_log

app = typer.Typer(help="ATNA syslog messages that could not be mapped: list, show, replay.", no_args_is_help=True)


@app.command("list")
def list_(
    status: Annotated[str, typer.Option(help="quarantined | replayed | discarded")] = "quarantined",
    reason: Annotated[str | None, typer.Option(help="only this reason code")] = None,
    after: Annotated[int, typer.Option(help="entries after this id (the next page)")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Entries in arrival order, without their messages."""
    entries = with_audit_log(
        lambda audit: list_quarantine(audit, status=status, reason=reason, after=after, limit=limit)
    )
    if as_json:
        print(json.dumps({"entries": entries}, indent=2))
        return
    table = Table(title=f"Syslog quarantine ({status})", title_justify="left")
    for column in ("id", "received", "reason", "detail", "transport", "peer", "sender", "msgid", "bytes", "times"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            *(
                escape(str(v if v is not None else ""))
                for v in (
                    e["id"],
                    e["received_at"],
                    e["reason"],
                    e["detail"],
                    e["transport"],
                    e["peer"],
                    e["emitter"],
                    e["msgid"],
                    e["message_bytes"],
                    e["times_received"],
                )
            )
        )
    console.print(table)


@app.command()
def show(
    entry_id: Annotated[int, typer.Argument(help="the entry's id")],
    reveal: Annotated[
        bool, typer.Option("--reveal", help="also print the message (PHI; the reveal is recorded in the chain)")
    ] = False,
) -> None:
    """One entry; its message only with --reveal."""
    entry = with_audit_log(lambda audit: show_quarantined(audit, cli_caller(Role.ADMIN), entry_id, reveal=reveal))
    print(json.dumps(entry, indent=2, ensure_ascii=False))


@app.command()
def replay(
    entry_ids: Annotated[list[int] | None, typer.Argument(help="entry ids (or --all / --reason)")] = None,
    every: Annotated[bool, typer.Option("--all", help="every quarantined entry")] = False,
    reason: Annotated[str | None, typer.Option(help="every quarantined entry with this reason")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Map quarantined messages again (after a fix) and append what now maps."""
    if entry_ids and (every or reason):
        fail("name entry ids, or --all, or --reason; not both")

    async def run(audit: AuditLog) -> list[ReplayOutcome]:
        ids = await select_for_replay(audit, ids=entry_ids or (), reason=reason, every=every)
        return [await replay_entry(audit, entry_id, cli_caller(Role.ADMIN)) for entry_id in ids]

    outcomes = with_audit_log(run)
    rows: list[dict[str, Any]] = [
        {"id": o.id, "status": o.status, "reason": o.reason, "seqs": list(o.seqs)} for o in outcomes
    ]
    if as_json:
        print(json.dumps({"replayed": rows}, indent=2))
        return
    done = sum(1 for o in outcomes if o.status == "replayed")
    for row in rows:
        what = f"seq {', '.join(map(str, row['seqs']))}" if row["status"] == "replayed" else row["reason"]
        console.print(f"{row['id']}: {row['status']} ({escape(str(what))})", highlight=False)
    console.print(f"{done} of {len(outcomes)} replayed", highlight=False)


@app.command()
def discard(entry_id: Annotated[int, typer.Argument(help="the entry's id")]) -> None:
    """Give up on a quarantined message: it stays, marked discarded."""
    if not with_audit_log(lambda audit: discard_entry(audit, entry_id, cli_caller(Role.ADMIN))):
        fail(f"entry {entry_id} is not in quarantine")
    console.print(f"{entry_id} discarded", highlight=False)
