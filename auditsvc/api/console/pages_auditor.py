"""The auditor page: the latest signed checkpoint and its witnesses, the last
verification and its result, "verify now" with its progress, and the
evidence package.

"Verify now" is a POST (CSRF) that starts a run (domain/verification_runs.py)
and comes back to the page, whose script (static/auditor.js) polls the small
JSON status route until the run has a result. The evidence package is a POST
too (it is recorded in the chain before it is written) and is streamed from a
temporary file, deleted once sent.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from ...domain import proofs, verification_runs
from ...domain.errors import Conflict
from ...domain.evidence_download import evidence_package
from .guard import acting_as, console_user, csrf_user
from .render import page_roles, render
from .session import ConsoleUser, current_user

router = APIRouter(include_in_schema=False)

ROLES = page_roles("/auditor")
Auditor = Annotated[ConsoleUser, Depends(console_user(*ROLES))]
AuditorPost = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*ROLES))]
RECENT = 10


@router.get("/auditor")
async def auditor_page(request: Request, user: Auditor) -> Response:
    audit = request.app.state.audit
    latest = await verification_runs.latest_run(audit)  # records a dead run as failed first
    context = {
        "checkpoint": await proofs.latest_checkpoint_summary(audit),
        "verifier_key": proofs.verifier_key(audit),
        "latest": latest,
        "runs": await verification_runs.recent_runs(audit, RECENT),
        "refused": request.query_params.get("refused") == "running",
    }
    return render(request, "auditor.html", user, context)


@router.post("/auditor/verify")
async def verify_now(request: Request, posted: AuditorPost) -> Response:
    user, _ = posted
    try:
        await verification_runs.start_run(request.app.state.audit, user.caller, "console")
    except Conflict:
        return RedirectResponse("/auditor?refused=running#verification", status_code=303)
    return RedirectResponse("/auditor#verification", status_code=303)


async def _status_reader(request: Request) -> ConsoleUser:
    # The page polls this while a run goes on: not activity, or polling
    # would hold off the automatic logoff for as long as a verification runs.
    return acting_as(await current_user(request, activity=False), ROLES)


@router.get("/auditor/verification")
async def verification_status(request: Request, user: Annotated[ConsoleUser, Depends(_status_reader)]) -> Response:
    """The latest run as JSON, for the page's progress (no PHI in it)."""
    latest = await verification_runs.latest_run(request.app.state.audit)
    return JSONResponse({"run": latest.to_json() if latest else None}, headers={"Cache-Control": "no-store"})


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@router.post("/auditor/evidence")
async def evidence(request: Request, posted: AuditorPost) -> Response:
    user, _ = posted
    summary = await evidence_package(request.app.state.audit, user.caller)
    name = f"auditsvc-evidence-{summary.from_seq}-{summary.to_seq}.tar.gz"
    return FileResponse(
        summary.path,
        media_type="application/gzip",
        filename=name,
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(_remove, summary.path),
    )
