"""/v1/systems: the system registry. Admins write; privacy officers,
auditors (and admins) read. System ids are not PHI: they may sit in URLs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from ...domain.errors import NotFound
from ...domain.systems import (
    SYSTEM_ID_PATTERN,
    SystemEntryIn,
    check_system_id,
    list_registry,
    parse_entry,
    registry_entries,
    set_entry,
)
from ...domain.tokens import Caller, Role
from ..deps import AdminDep, AuditDep, require
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import ErrorOut, request_body_schema

MAX_ENTRY_BODY_BYTES = 16 * 1024

router = APIRouter(prefix="/v1/systems", tags=["systems"])
RegistryReaderDep = Annotated[Caller, Depends(require(Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN))]
SystemIdPath = Annotated[str, Path(pattern=SYSTEM_ID_PATTERN, description="a system id (not PHI)")]


class BaaOut(BaseModel):
    status: Literal["on_file", "none", "not_required"] | None
    effective: str | None
    expires: str | None
    reference: str | None


class RecordedOut(BaseModel):
    seq: int
    at: str
    by: str


class SystemEntryOut(BaseModel):
    system_id: str
    name: str | None
    organization: str | None
    address: str | None
    relationship: str | None
    baa: BaaOut | None
    registered: bool
    recorded: RecordedOut | None


class RegistryOut(BaseModel):
    systems: list[SystemEntryOut]


@router.get("", response_model=RegistryOut, summary="Every registered system")
async def list_systems(audit: AuditDep, caller: RegistryReaderDep) -> dict[str, Any]:
    return {"systems": await list_registry(audit)}


@router.get(
    "/{system_id:path}",
    response_model=SystemEntryOut,
    summary="One system's registry entry (404 for an id never registered)",
    responses={404: {"model": ErrorOut, "description": "no registry entry for this system id"}},
)
async def get_system(system_id: SystemIdPath, audit: AuditDep, caller: RegistryReaderDep) -> dict[str, Any]:
    check_system_id(system_id)
    entry = (await registry_entries(audit, [system_id]))[system_id]
    if not entry["registered"]:
        # Not echoed: a mistyped id may be anything, a patient identifier included.
        # Reports still show unregistered ids, marked "registered": false.
        raise NotFound("no registry entry for this system id")
    return entry


@router.put(
    "/{system_id:path}",
    response_model=SystemEntryOut,
    openapi_extra=request_body_schema(SystemEntryIn),
    summary="Register a system or replace its entry (recorded in the chain)",
)
async def put_system(
    system_id: SystemIdPath, request: Request, audit: AuditDep, caller: AdminDep, limits: BodyLimitsDep
) -> dict[str, Any]:
    entry = parse_entry(await read_json_body(request, MAX_ENTRY_BODY_BYTES, limits.json), system_id)
    return await set_entry(audit, caller, entry)
