"""``auditsvc tokens create|list|revoke``: API credentials (owner connection)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..domain.errors import InvalidInput
from ..domain.token_admin import token_state
from ..domain.tokens import Role, new_token
from ..keys import load_keys
from ..store.engine import PoolConfig, create_engine
from ..store.session import driver_connection
from ..store.tokens import insert_token, list_tokens, revoke_token
from ._common import console, database, fail, run, settings

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="emitter, privacy_officer, auditor or admin")],
    system: Annotated[list[str], typer.Option(help="source system id an emitter may claim (repeatable)")] = [],  # noqa: B006
    name: Annotated[str | None, typer.Option(help="who or what holds the token")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="expire after this many days")] = None,
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
            help="expire at this time (UTC unless an offset is given)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='print {"token": ...}')] = False,
) -> None:
    """Create a token and print it once; only its keyed hash is stored.

    Expiry and revocation are checked on every request: both take effect at once."""
    if expires_in_days is not None and expires_at is not None:
        fail("give --expires-in-days or --expires-at, not both")
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    if expires_at is not None:
        expires = expires_at if expires_at.tzinfo is not None else expires_at.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            fail("--expires-at is in the past")
    s = settings()
    url = database(s)
    try:
        token = new_token(load_keys(s, sealing=False), role, list(system))
    except InvalidInput as exc:
        fail(exc.message)

    async def _create() -> None:
        engine = create_engine(url, PoolConfig.from_settings(s))
        try:
            async with driver_connection(engine) as conn:
                await insert_token(conn, token.token_id, token.secret_hmac, role.value, list(system), name, expires)
        finally:
            await engine.dispose()

    run(_create())
    if as_json:
        print(
            json.dumps(
                {
                    "token": token.token,
                    "token_id": token.token_id,
                    "role": role.value,
                    "systems": system,
                    "expires_at": expires.isoformat() if expires else None,
                }
            )
        )
    else:
        console.print(
            f"token id [bold]{token.token_id}[/] ({role.value}); store this token now, it is not shown again:"
        )
        print(token.token)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List tokens (ids, roles, systems, state); secrets are never shown."""
    s = settings()
    url = database(s)

    async def _list() -> list[dict[str, object]]:
        engine = create_engine(url, PoolConfig.from_settings(s))
        try:
            async with driver_connection(engine) as conn:
                rows = await list_tokens(conn)
        finally:
            await engine.dispose()
        now = datetime.now(UTC)
        return [
            {
                "token_id": t.token_id,
                "role": t.role,
                "systems": list(t.systems),
                "name": t.name,
                "created_at": t.created_at.isoformat(),
                "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                "state": token_state(t, now),
            }
            for t in rows
        ]

    tokens = run(_list())
    if as_json:
        print(json.dumps(tokens))
        return
    table = Table("token id", "role", "systems", "name", "created", "expires", "state")
    for t in tokens:
        table.add_row(
            str(t["token_id"]),
            str(t["role"]),
            ", ".join(t["systems"]),  # type: ignore[arg-type]
            str(t["name"] or ""),
            str(t["created_at"])[:19],
            str(t["expires_at"] or "")[:19],
            str(t["state"]),
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="the token id shown by create/list")]) -> None:
    """Revoke a token; it is refused from the next request on."""
    s = settings()
    url = database(s)

    async def _revoke() -> bool:
        engine = create_engine(url, PoolConfig.from_settings(s))
        try:
            async with driver_connection(engine) as conn:
                return await revoke_token(conn, token_id)
        finally:
            await engine.dispose()

    if not run(_revoke()):
        fail(f"no active token with id {token_id}")
    console.print(f"revoked {token_id}")
