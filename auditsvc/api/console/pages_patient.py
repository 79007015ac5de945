"""The patient page: search by any identifier, the report, one event, exports.

The identifier never travels in a URL: the search is a POST; its identifier
is sealed and kept server-side under an opaque id (``console_searches``),
and the report lives at ``/patient/r/<id>``, whose filters and paging are
GET parameters that carry no PHI (dates, system ids, codes, a cursor).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...runtime import AuditLog
from ...store import console_sessions as store
from ...store.session import driver_connection
from .guard import console_user
from .render import page_roles, render
from .session import ConsoleUser

router = APIRouter(include_in_schema=False)

MAX_SYSTEMS_LISTED = 200
Officer = Annotated[ConsoleUser, Depends(console_user(*page_roles("/patient")))]


async def _identifier_systems(audit: AuditLog) -> list[str]:
    async with driver_connection(audit.engine) as conn:
        return await store.identifier_systems(conn, audit.log_id, MAX_SYSTEMS_LISTED)


@router.get("/patient")
async def patient_search(request: Request, user: Officer) -> Response:
    systems = await _identifier_systems(request.app.state.audit)
    return render(request, "patient_search.html", user, {"systems": systems})
