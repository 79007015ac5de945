"""``auditsvc report coverage``: is every interface still auditing?"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..domain.coverage import CoverageConfig, coverage_csv, coverage_report, parse_coverage_query
from ..domain.tokens import Role
from ..runtime import AuditLog
from ._common import cli_caller, console, settings, with_audit_log
from ._reports import Format, FormatOpt, OutOpt, as_json, write_output


def _when(stamp: str | None) -> str:
    return stamp[:16].replace("T", " ") if stamp else "never"


def render_coverage(report: dict[str, Any]) -> None:
    hours = report["silent_after_seconds"] / 3600
    table = Table(title=f"Systems (silent: no event for {hours:g} h; times UTC)", title_justify="left")
    for column in ("system", "name", "relationship", "last event", "events/h", "status"):
        table.add_column(column)
    for s in report["systems"]:
        status = "[bold red]SILENT[/]" if s["silent"] else "ok"
        table.add_row(
            escape(s["system_id"]), escape(s["name"] or "(unregistered)"), escape(s["relationship"] or ""),
            _when(s["last_event"]), "" if s["rate_per_hour"] is None else f"{s['rate_per_hour']:g}", status,
        )  # fmt: skip
    console.print(table)
    emitters = Table(title="Emitters", title_justify="left")
    for column in ("emitter", "name", "systems", "last event", "events/h", "status"):
        emitters.add_column(column)
    for e in report["emitters"]:
        status = "revoked" if e["revoked"] else ("[bold red]SILENT[/]" if e["silent"] else "ok")
        emitters.add_row(
            escape(e["emitter"]), escape(e["name"] or ""), escape(", ".join(e["systems"])), _when(e["last_event"]),
            "" if e["rate_per_hour"] is None else f"{e['rate_per_hour']:g}", status,
        )  # fmt: skip
    console.print(emitters)
    new = report["new_pairs"]
    pairs = Table(title=f"Pairs first seen {_when(new['from'])} - {_when(new['to'])}", title_justify="left")
    for column in ("source", "destination", "first event"):
        pairs.add_column(column)
    for p in new["pairs"]:
        pairs.add_row(escape(p["source_system"]), escape(p["destination_system"]), _when(p["first_event"]))
    console.print(pairs)


def coverage(
    from_: Annotated[str | None, typer.Option("--from", help="new pairs from this day or timestamp")] = None,
    to: Annotated[str | None, typer.Option("--to", help="new pairs up to this day or timestamp (inclusive)")] = None,
    silent_after: Annotated[str | None, typer.Option(help="silence window: 90m, 24h, 7d")] = None,
    format_: FormatOpt = Format.TABLE,
    out: OutOpt = None,
) -> None:
    """Every system and emitter with its last event and usual rate; silent ones flagged; new pairs."""

    async def _run(audit: AuditLog) -> dict[str, Any]:
        query = parse_coverage_query({"from": from_, "to": to, "silent_after": silent_after})
        return await coverage_report(audit, query, cli_caller(Role.AUDITOR), CoverageConfig.from_settings(settings()))

    report = with_audit_log(_run)
    if format_ is Format.TABLE and out is None:
        render_coverage(report)
        return
    if format_ is Format.CSV:
        write_output("".join(coverage_csv(report)), out, end="")
    else:
        write_output(as_json(report), out)
