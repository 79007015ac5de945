"""The break-glass review queue: unreviewed, reviewed, overdue and all
emergency accesses, each with its detail and review history, and the review
form (verdict and notes, POST with CSRF). After a review the page shows it
with the chain seq that records it.

The same domain calls as ``/v1/reviews`` (domain/reviews.py): every page of
the queue is recorded in the chain before it is shown, every review is an
event in it. Notes and identifiers travel only in bodies; the queue's URL
holds its tab and a cursor (no PHI).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.errors import InvalidInput
from ...domain.ingest import parse_params
from ...domain.reviews import (
    MAX_NOTES,
    QueueStatus,
    ReviewConfig,
    ReviewRequest,
    break_glass_queue,
    parse_queue_query,
    record_review,
)
from .form_errors import named_fields
from .guard import console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser

router = APIRouter(include_in_schema=False)

ROLES = page_roles("/break-glass")
Officer = Annotated[ConsoleUser, Depends(console_user(*ROLES))]
OfficerPost = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*ROLES))]
TABS: tuple[tuple[QueueStatus, str], ...] = (
    ("unreviewed", "Unreviewed"),
    ("overdue", "Overdue"),
    ("reviewed", "Reviewed"),
    ("all", "All"),
)
PAGE_SIZE = 25
VERDICTS = (
    ("appropriate", "Appropriate", "the emergency access was justified"),
    ("inappropriate", "Inappropriate", "a privacy incident: follow the breach procedure"),
    ("investigate", "Investigate", "needs more information before a verdict"),
)


@router.get("/break-glass")
async def queue_page(request: Request, user: Officer) -> Response:
    params = request.query_params
    status = params.get("status") or "unreviewed"
    query = parse_queue_query({"status": status, "cursor": params.get("cursor"), "limit": PAGE_SIZE})
    audit = request.app.state.audit
    page = await break_glass_queue(audit, query, user.caller, ReviewConfig.from_settings(audit.settings))
    return render(request, "break_glass.html", user, _context(query.status, page, params.get("cursor")))


def _context(status: str, page: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "tabs": TABS,
        "page": page,
        "items": page["items"],
        "next_url": f"/break-glass?status={status}&cursor={page['next_cursor']}" if page["next_cursor"] else None,
        "first_url": f"/break-glass?status={status}" if cursor else None,
        "verdicts": VERDICTS,
        "max_notes": MAX_NOTES,
    }


@router.post("/break-glass/review")
async def review(request: Request, posted: OfficerPost) -> Response:
    user, form = posted
    fields: dict[str, Any] = {k: form[k] for k in ("event_id", "verdict", "notes") if k in form}
    try:
        body = parse_params(ReviewRequest, fields, "review")
    except InvalidInput as exc:
        raise named_fields(exc) from None
    recorded = await record_review(request.app.state.audit, body, user.caller)
    return render(request, "break_glass_reviewed.html", user, {"recorded": recorded, "verdicts": VERDICTS})
