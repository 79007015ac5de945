"""``auditsvc systems list|set|import``: the system registry at the command line.

Changes are appended to the chain like the API's, with the operating-system
user (``cli:<user>``) as the admin who made them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from ..domain.errors import DomainError
from ..domain.systems import (
    BAA_STATUSES,
    RELATIONSHIPS,
    ImportErrors,
    SystemEntryIn,
    check_system_id,
    list_registry,
    parse_import,
    set_entries,
)
from ..domain.tokens import Role
from ._common import cli_caller, console, err_console, fail, with_audit_log

app = typer.Typer(help="The system registry: names, relationships, BAAs.", no_args_is_help=True)


def _table(entries: list[dict[str, Any]]) -> None:
    table = Table(title="System registry", title_justify="left")
    for column in ("system", "name", "organization", "relationship", "BAA", "effective", "expires", "reference"):
        table.add_column(column)
    for e in entries:
        baa = e["baa"] or {}
        table.add_row(
            *(
                escape(str(v or ""))
                for v in (
                    e["system_id"],
                    e["name"],
                    e["organization"],
                    e["relationship"],
                    baa.get("status"),
                    baa.get("effective"),
                    baa.get("expires"),
                    baa.get("reference"),
                )
            )
        )
    console.print(table)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every registered system."""
    entries = with_audit_log(list_registry)
    if as_json:
        print(json.dumps({"systems": entries}, indent=2, ensure_ascii=False))
    else:
        _table(entries)


@app.command("set")
def set_(
    system_id: Annotated[str, typer.Argument(help="the system id, as events name it")],
    name: Annotated[str, typer.Option(help="display name")],
    relationship: Annotated[str, typer.Option(help=" | ".join(RELATIONSHIPS))],
    baa_status: Annotated[str, typer.Option("--baa-status", help=" | ".join(BAA_STATUSES))],
    organization: Annotated[str | None, typer.Option(help="organisation")] = None,
    address: Annotated[str | None, typer.Option(help="postal address")] = None,
    baa_effective: Annotated[str | None, typer.Option("--baa-effective", help="YYYY-MM-DD")] = None,
    baa_expires: Annotated[str | None, typer.Option("--baa-expires", help="YYYY-MM-DD")] = None,
    baa_reference: Annotated[str | None, typer.Option("--baa-reference", help="the agreement's reference")] = None,
) -> None:
    """Register a system or replace its entry (recorded in the chain)."""
    try:
        check_system_id(system_id)
        entry = SystemEntryIn.model_validate(
            {
                "system_id": system_id,
                "name": name,
                "organization": organization,
                "address": address,
                "relationship": relationship,
                "baa": {
                    "status": baa_status,
                    "effective": baa_effective,
                    "expires": baa_expires,
                    "reference": baa_reference,
                },
            }
        )
    except DomainError as exc:
        fail(exc.message)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()))
    [stored] = with_audit_log(lambda audit: set_entries(audit, cli_caller(Role.ADMIN), [entry]))
    console.print(f"{escape(system_id)} registered (seq {stored['recorded']['seq']})", highlight=False)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row")],
) -> None:
    """Register every system of a CSV file (columns: system_id, name,
    organization, address, relationship, baa_status, baa_effective,
    baa_expires, baa_reference). One bad row and nothing is imported."""
    try:
        entries = parse_import(file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text")
    except ImportErrors as exc:
        for line, message in exc.lines:
            err_console.print(f"{escape(str(file))}:{line}: {escape(message)}", highlight=False)
        fail(exc.message)
    if not entries:
        fail(f"{file} has no rows")
    stored = with_audit_log(lambda audit: set_entries(audit, cli_caller(Role.ADMIN), entries))
    console.print(f"{len(stored)} systems in {escape(str(file))} registered", highlight=False)
