"""Response shapes of the HTTP API (the contract in DESIGN.md), for OpenAPI
and for filtering what leaves the service."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..domain.errors import RefusedReason


class EventResultOut(BaseModel):
    event_id: str
    status: str
    seq: int


class HeadOut(BaseModel):
    tree_size: int
    chain_hash: str


class AppendResponse(BaseModel):
    results: list[EventResultOut]
    head: HeadOut


class IdentifierOut(BaseModel):
    system: str
    value: str


class EventWithHashes(BaseModel):
    record: dict[str, Any] = Field(
        description="the stored record, whose RFC 8785 encoding is the leaf bytes; "
        "format 2 holds patient identifiers sealed (value_enc) with their lookup hash (value_hmac)"
    )
    seq: int
    leaf_hash: str
    chain_hash: str
    patient_identifiers: list[IdentifierOut] | None = Field(
        default=None, description="the record's identifiers opened; privacy_officer only"
    )


class InclusionProof(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str = Field(description="lowercase hex")
    hashes: list[str] = Field(description="the audit path, lowest level first, lowercase hex (RFC 9162 2.1.3)")


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str] = Field(description="lowercase hex (RFC 9162 2.1.4)")


class PatientOut(BaseModel):
    identifiers: list[IdentifierOut]


class SystemAccessOut(BaseModel):
    system_id: str
    count: int
    as_source: int
    as_destination: int
    first_access: str
    last_access: str
    actions: list[str]
    data_elements: list[str]
    actors: list[dict[str, Any]]


class PatientAccessReport(BaseModel):
    patient: PatientOut
    systems: list[SystemAccessOut]
    events: list[dict[str, Any]]
    next_cursor: str | None
    revealed_by: list[dict[str, Any]] | None = Field(
        default=None,
        description="on the first page: the system- and actor-access report pages that listed this patient",
    )


class RefusedEventOut(BaseModel):
    """One event of a batch that a 403 or 422 refuses: its place in ``events``
    and why (``invalid``: it fails validation, see ``errors``;
    ``source_not_allowed``: its ``source.system_id`` is not one the token may emit for)."""

    index: int = Field(ge=0)
    reason: RefusedReason


class ErrorOut(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None
    refused: list[RefusedEventOut] | None = Field(
        default=None, description="Every event of the batch this answer refuses (403, 422 naming events)"
    )


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself (size limit,
    one-pass validation) but should still document the body's schema."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The models' JSON schemas, ``$defs`` hoisted, for ``components.schemas``."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out
