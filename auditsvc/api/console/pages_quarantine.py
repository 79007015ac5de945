"""The quarantine page (admins): ATNA syslog messages that could not become
events (issue 19: nothing lost, nothing silent), with a replay after a fix
and a discard.

Entries only, as ``GET /v1/quarantine``: reason, detail, transport, sender,
sizes and times, never the message, which may hold PHI and is revealed only
by ``auditsvc quarantine show --reveal`` on the server (a reveal recorded in
the chain). A replay runs the message through the listeners' conversion
again (domain/quarantine.py), so its events carry the original sender's
identity; a discard keeps the message, marked ``discarded``. Each is
recorded in the chain as the admin's change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ...domain.errors import InvalidInput
from ...domain.quarantine import REASON_TEXT as REASONS
from ...domain.quarantine import discard_entry, quarantine_page, replay_entry
from ...store.quarantine import STATUSES
from .guard import console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser
from .tables import Pager

router = APIRouter(include_in_schema=False)

ROLES = page_roles("/quarantine")
Admin = Annotated[ConsoleUser, Depends(console_user(*ROLES))]
AdminPost = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*ROLES))]
PAGE_SIZE = 50


def _choice(request: Request, name: str, allowed: frozenset[str] | tuple[str, ...], default: str | None) -> str | None:
    value = request.query_params.get(name) or default
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name}: choose one of {', '.join(sorted(allowed))}")
    return value


def _after(request: Request) -> int:
    raw = request.query_params.get("cursor", "0") or "0"
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidInput("cursor: the id of the last entry of the page before")
    return int(raw)


@router.get("/quarantine")
async def quarantine_list(request: Request, user: Admin) -> Response:
    status = _choice(request, "status", STATUSES, "quarantined") or "quarantined"
    reason = _choice(request, "reason", frozenset(REASONS), None)
    if reason is not None and status != "quarantined":
        raise InvalidInput("reason: entries are filtered by reason while quarantined only")
    entries, next_after = await quarantine_page(
        request.app.state.audit, status=status, reason=reason, after=_after(request), limit=PAGE_SIZE
    )
    context = {
        "entries": entries,
        "status": status,
        "reason": reason,
        "statuses": STATUSES,
        "reasons": REASONS,
        "paging": Pager.for_cursor(request, str(next_after) if next_after is not None else None),
        "done": request.query_params.get("done"),
        "entry": request.query_params.get("entry"),
        "now_reason": request.query_params.get("now_reason"),
    }
    return render(request, "quarantine.html", user, context)


def _entry_id(form: dict[str, str]) -> int:
    raw = (form.get("entry_id") or "").strip()
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidInput("entry_id: the number of a quarantine entry")
    return int(raw)


@router.post("/quarantine/replay")
async def replay(request: Request, posted: AdminPost) -> Response:
    user, form = posted
    outcome = await replay_entry(request.app.state.audit, _entry_id(form), user.caller)
    target = f"/quarantine?done={outcome.status}&entry={outcome.id}"
    if outcome.reason and outcome.reason in REASONS:
        target += f"&now_reason={outcome.reason}"
    return RedirectResponse(target, status_code=303)


@router.post("/quarantine/discard")
async def discard(request: Request, posted: AdminPost) -> Response:
    user, form = posted
    entry_id = _entry_id(form)
    done = "discarded" if await discard_entry(request.app.state.audit, entry_id, user.caller) else "skipped"
    return RedirectResponse(f"/quarantine?done={done}&entry={entry_id}", status_code=303)
