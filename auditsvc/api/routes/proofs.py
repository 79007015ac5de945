"""/v1/proofs: RFC 9162 inclusion and consistency proofs (auditors).

Hashes are lowercase hex; verify them with ``auditsvc_sdk`` against a
signed checkpoint (``verify_inclusion``, ``verify_consistency``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...domain import proofs
from ..deps import AuditDep, AuditorDep
from ..schemas import ConsistencyProof, InclusionProof

router = APIRouter(prefix="/v1/proofs", tags=["proofs"])

Size = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.get("/inclusion", response_model=InclusionProof, summary="Inclusion proof of one event in a tree size")
async def inclusion(
    audit: AuditDep,
    caller: AuditorDep,
    seq: Size,
    tree_size: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="default: the latest checkpoint")] = None,
) -> dict[str, Any]:
    return await proofs.inclusion(audit, seq, tree_size)


@router.get("/consistency", response_model=ConsistencyProof, summary="Consistency proof between two tree sizes")
async def consistency(
    audit: AuditDep,
    caller: AuditorDep,
    first: Size,
    second: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="default: the latest checkpoint")] = None,
) -> dict[str, Any]:
    return await proofs.consistency(audit, first, second)
