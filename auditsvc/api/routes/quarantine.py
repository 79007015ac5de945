"""GET /v1/quarantine: the ATNA syslog messages that could not be mapped
(domain/quarantine.py), for admins and the console. Entries only: reason,
detail, transport, sender, sizes and times; never the message, which holds
PHI and is revealed only by ``auditsvc quarantine show --reveal`` on the
server, a reveal recorded in the chain."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ...domain.quarantine import MAX_PAGE, quarantine_page
from ..deps import AdminDep, AuditDep

router = APIRouter(prefix="/v1/quarantine", tags=["syslog"])


@router.get("", summary="ATNA syslog messages kept in quarantine (entries, never the messages)")
async def quarantine_entries(
    audit: AuditDep,
    caller: AdminDep,
    status: Literal["quarantined", "replayed", "discarded"] = "quarantined",
    reason: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,64}$", description="only entries with this reason code")
    ] = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="the last id of the page before")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    entries, next_after = await quarantine_page(audit, status=status, reason=reason, after=after, limit=limit)
    return {"entries": entries, "next_after": next_after}
