"""The system and actor reports: what one system, or one user or service,
accessed over a period: patients, counterparts, data elements, and the
events, paged; CSV of every event.

The same domain calls as ``/v1/reports/system-access`` and
``/actor-access`` (domain/access_reports.py), so every page shown and every
export is recorded in the chain as the API records it. The subject (a
system id, an actor id: neither is PHI), the period and the cursor are GET
parameters, so pages can be linked and paged; patients appear only in the
page's body.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.access_reports import (
    AccessQuery,
    ActorAccessQuery,
    SystemAccessQuery,
    access_report,
    access_report_records,
)
from ...domain.errors import InvalidInput
from ...domain.ingest import parse_params
from ...domain.systems import list_registry
from ..csv_stream import events_csv
from .form_errors import named_fields
from .guard import console_user
from .render import page_roles, render
from .session import ConsoleUser
from .tables import Pager, Sort, sort_rows, sort_url

router = APIRouter(include_in_schema=False)

Officer = Annotated[ConsoleUser, Depends(console_user(*page_roles("/system")))]
PAGE_SIZE = 50
COUNTERPART_KEYS = {
    "system_id": lambda c: c["system_id"],
    "count": lambda c: c["count"],
    "as_source": lambda c: c["as_source"],
    "as_destination": lambda c: c["as_destination"],
}


def _query(request: Request, kind: str) -> AccessQuery | None:
    """The report asked for by the page's GET parameters; None: the form only."""
    params = request.query_params
    field = "system_id" if kind == "system" else "actor_id"
    subject = (params.get(field) or "").strip()
    if not subject:
        return None
    body: dict[str, Any] = {field: subject, "limit": PAGE_SIZE}
    for name in ("from", "to", "cursor"):
        if params.get(name):
            body[name] = params[name]
    try:
        if kind == "system":
            return parse_params(SystemAccessQuery, body, "report request")
        return parse_params(ActorAccessQuery, body, "report request")
    except InvalidInput as exc:
        raise named_fields(exc) from None


async def _page(request: Request, user: ConsoleUser, kind: str) -> Response:
    audit = request.app.state.audit
    query = _query(request, kind)
    context: dict[str, Any] = {
        "kind": kind,
        "params": request.query_params,
        "report": None,
        "registry": await list_registry(audit) if kind == "system" else [],
    }
    if query is not None:
        report = await access_report(audit, query, user.caller)
        sort = Sort.from_request(request, COUNTERPART_KEYS, "count", descending=True)
        context |= {
            "report": report,
            "subject": report.get("system") or report.get("actor"),
            "counterparts": sort_rows(report["counterparts"] or [], sort, COUNTERPART_KEYS),
            "sort": sort,
            "sort_urls": {key: sort_url(request, sort, key) for key in COUNTERPART_KEYS},
            "paging": Pager.for_cursor(request, report["next_cursor"]),
            "csv_url": f"/{kind}/events.csv?"
            + urlencode(
                [(k, v) for k, v in request.query_params.items() if k in ("system_id", "actor_id", "from", "to")]
            ),
        }
    return render(request, "access.html", user, context)


async def _csv(request: Request, user: ConsoleUser, kind: str) -> Response:
    query = _query(request, kind)
    if query is None:
        raise InvalidInput(f"{'system_id' if kind == 'system' else 'actor_id'}: required")
    records = await access_report_records(request.app.state.audit, query, user.caller, "csv")
    return events_csv(records, f"{kind}-access.csv")


@router.get("/system")
async def system_report(request: Request, user: Officer) -> Response:
    return await _page(request, user, "system")


@router.get("/system/events.csv")
async def system_csv(request: Request, user: Officer) -> Response:
    return await _csv(request, user, "system")


@router.get("/actor")
async def actor_report(request: Request, user: Officer) -> Response:
    return await _page(request, user, "actor")


@router.get("/actor/events.csv")
async def actor_csv(request: Request, user: Officer) -> Response:
    return await _csv(request, user, "actor")
