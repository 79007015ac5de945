"""The coverage page (every system and emitter with its last event, silent
ones flagged; source -> destination pairs first seen in a period) and the
activity review record (who ran which report, export or review, when).

The same domain calls as ``GET /v1/reports/coverage`` and
``POST /v1/reports/activity`` (domain/coverage.py, domain/activity.py), so
each run is recorded in the chain as the API records it. Neither holds PHI:
their parameters (dates, a duration, a cursor) are GET parameters.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.activity import ActivityQuery, activity_report
from ...domain.coverage import CoverageConfig, coverage_report, parse_coverage_query
from ...domain.errors import InvalidInput
from ...domain.ingest import parse_params
from .form_errors import named_fields
from .guard import console_user
from .render import page_roles, render
from .session import ConsoleUser
from .tables import Pager, Sort, sort_rows, sort_url

router = APIRouter(include_in_schema=False)

Reader = Annotated[ConsoleUser, Depends(console_user(*page_roles("/coverage")))]
ActivityReader = Annotated[ConsoleUser, Depends(console_user(*page_roles("/activity")))]
ACTIVITY_PAGE = 50


def _last(row: dict[str, Any]) -> str:
    return row["last_event"] or ""


SYSTEM_KEYS = {
    "system_id": lambda s: s["system_id"],
    "name": lambda s: (s["name"] or "").lower(),
    "last_event": _last,
    "rate": lambda s: s["rate_per_hour"] or 0.0,
    "silent": lambda s: (not s["silent"], s["system_id"]),
}


def _params(request: Request, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: request.query_params.get(name) or None for name in names}


@router.get("/coverage")
async def coverage_page(request: Request, user: Reader) -> Response:
    audit = request.app.state.audit
    try:
        query = parse_coverage_query(_params(request, ("from", "to", "silent_after")))
    except InvalidInput as exc:
        raise named_fields(exc) from None
    report = await coverage_report(audit, query, user.caller, CoverageConfig.from_settings(audit.settings))
    sort = Sort.from_request(request, SYSTEM_KEYS, "silent")
    context = {
        "report": report,
        "params": request.query_params,
        "systems": sort_rows(report["systems"], sort, SYSTEM_KEYS),
        "sort": sort,
        "sort_urls": {key: sort_url(request, sort, key) for key in SYSTEM_KEYS},
        "silent_count": sum(1 for s in report["systems"] if s["silent"]),
    }
    return render(request, "coverage.html", user, context)


@router.get("/activity")
async def activity_page(request: Request, user: ActivityReader) -> Response:
    body = {k: v for k, v in _params(request, ("from", "to", "cursor")).items() if v is not None}
    try:
        query = parse_params(ActivityQuery, {**body, "limit": ACTIVITY_PAGE}, "activity request")
    except InvalidInput as exc:
        raise named_fields(exc) from None
    report = await activity_report(request.app.state.audit, query, user.caller)
    context = {
        "report": report,
        "params": request.query_params,
        "paging": Pager.for_cursor(request, report["next_cursor"]),
    }
    return render(request, "activity.html", user, context)
