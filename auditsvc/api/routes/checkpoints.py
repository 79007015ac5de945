"""/v1/checkpoints: signed checkpoints and the keys that verify them (auditors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse

from ...domain import proofs
from ..deps import AdminDep, AuditDep, AuditorDep

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])

NOTE = "text/plain; charset=utf-8"


@router.get(
    "/latest",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP signed note, with witness cosignatures)",
)
async def latest(audit: AuditDep, caller: AuditorDep) -> PlainTextResponse:
    return PlainTextResponse(await proofs.latest_note(audit), media_type=NOTE)


@router.get(
    "/verifier-key",
    response_class=PlainTextResponse,
    summary="The current Ed25519 verifier key: <name>+<hex key id>+<base64(0x01 || public key)>",
)
async def verifier_key(audit: AuditDep, caller: AuditorDep) -> PlainTextResponse:
    return PlainTextResponse(proofs.verifier_key(audit) + "\n", media_type=NOTE)


@router.get(
    "/verifier-keys",
    response_class=PlainTextResponse,
    summary="Every verifier key that signed this log's checkpoints, one per line (key rotation)",
)
async def verifier_keys(audit: AuditDep, caller: AuditorDep) -> PlainTextResponse:
    return PlainTextResponse("".join(k + "\n" for k in await proofs.all_verifier_keys(audit)), media_type=NOTE)


@router.get("/{tree_size}", response_class=PlainTextResponse, summary="The signed checkpoint of one tree size")
async def at_size(
    tree_size: Annotated[int, Path(ge=0, le=2**63 - 1)], audit: AuditDep, caller: AuditorDep
) -> PlainTextResponse:
    return PlainTextResponse(await proofs.latest_note(audit, tree_size), media_type=NOTE)


@router.post("", response_class=PlainTextResponse, summary="Sign a checkpoint of the current tree now (admin)")
async def sign_now(audit: AuditDep, caller: AdminDep) -> PlainTextResponse:
    return PlainTextResponse(await proofs.sign_now(audit), media_type=NOTE)
