"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...store.migrate import current_revision, head_revision
from ..deps import AuditDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrations are current")
async def readyz(audit: AuditDep) -> JSONResponse:
    try:
        current = await current_revision(audit.engine)
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    expected = head_revision(audit.settings)
    if current != expected:
        return JSONResponse(
            {"status": "unavailable", "reason": f"database at migration {current}, service expects {expected}"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "migration": current})
