"""What FastAPI leaves out of the OpenAPI document, so that it describes every
response the service really gives and only requests it really accepts
(tests/test_schemathesis.py holds it to that).

Error answers. FastAPI documents the success and, for routes with
parameters, its own 422 shape (``{"detail": [...]}``); this service answers
every error as ``{"detail": str, "errors"?: [{"loc", "msg", "type"}],
"refused"?: [RefusedEventOut]}`` (api/errors.py), with more statuses. Each operation gets those it can answer:

* every operation that needs a token: 401, 403, 429 (rate limit);
* every operation that reads the database: 503 (retry later);
* a request body: 400 (not UTF-8 or JSON), 413 (too large), 422;
* path or query parameters: 422; reads of one thing: 404; proofs: 409;
* ``POST /v1/events``: 500, the append transaction failed and nothing was stored.

The health probes (tag ``health``) need no token (``security: []``).

Request bodies. The event model's JSON schema is looser than the model in
three places, which the document tightens to what is really accepted: text
is stripped of surrounding white space before its length is checked (so it
must hold something that is not white space), attribute keys must match
their pattern (the schema's ``patternProperties`` alone admits others), and
attribute text may not hold NUL. A batch holds at most
``AUDITSVC_MAX_BATCH_EVENTS`` events.
"""

from __future__ import annotations

from typing import Any

from auditsvc_sdk.wire import NO_NUL_PATTERN

from ..settings import Settings
from .schemas import ErrorOut, component_schemas

ERROR_REF: dict[str, Any] = {"$ref": "#/components/schemas/ErrorOut"}
PUBLIC_TAGS = frozenset({"health"})
"""Operations with these tags (the liveness and readiness probes) need no token."""

# At least one character that str.strip() keeps (str.isspace() spelled out,
# since \s means other things in ECMA-262 and in Python), and no NUL anywhere.
PY_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{PY_WHITESPACE}][^\x00]*$"

_WHY = {
    "400": "The body is not UTF-8 or not JSON",
    "401": "No token, or an invalid, revoked or expired one (WWW-Authenticate: Bearer)",
    "403": "The token's role may not call this, or an emitter claims a source system it is not bound to "
    "(every such event listed in refused), "
    "or (AUDITSVC_TLS_CLIENT_AUTH=emitters) the connection has no client certificate",
    "404": "Not found",
    "409": "Refused because of the stored state",
    "413": "The body is over the size limit",
    "422": "Invalid input: each bad field named (never its value), or a JSON structure limit exceeded; "
    "a batch's invalid events are listed in refused",
    "429": "This credential's rate limit is exceeded; retry after Retry-After seconds",
    "500": "The append transaction failed; nothing was stored; retry",
    "503": "The database is unavailable; retry after Retry-After seconds",
}

_READINESS: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}, "migration": {"type": "string"}},
    "required": ["status"],
}


def complete_openapi(schema: dict[str, Any], settings: Settings) -> None:
    """Add the error answers and tighten the request bodies of ``schema``, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _tighten_bodies(components, settings)
    components.update(component_schemas(ErrorOut))  # and RefusedEventOut, which it refers to
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            needs_token = PUBLIC_TAGS.isdisjoint(operation.get("tags", ()))
            if not needs_token:
                operation["security"] = []
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation, needs_token):
                readiness = path == "/readyz" and status == "503"
                body: dict[str, Any] = _READINESS if readiness else ERROR_REF
                responses[status] = {
                    "description": "Not ready, and why" if readiness else _WHY[status],
                    "content": {"application/json": {"schema": body}},
                }
    # Every 422 is now ours: FastAPI's shapes are referenced no more.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def _statuses(path: str, method: str, operation: dict[str, Any], authenticated: bool) -> list[str]:
    statuses = ["503"]
    if authenticated:
        statuses += ["401", "403", "429"]
    if "requestBody" in operation:
        statuses += ["400", "413", "422"]
    if operation.get("parameters"):
        statuses.append("422")
    if method == "get" and ("{" in path or path.startswith("/v1/proofs/") or path.endswith("/latest")):
        statuses.append("404")
    if path.startswith("/v1/proofs/"):
        statuses.append("409")
    if (method, path) == ("post", "/v1/events"):
        statuses.append("500")
    return sorted(set(statuses))


def _tighten_bodies(components: dict[str, Any], settings: Settings) -> None:
    for node in _walk(components):
        if node.get("pattern") == NO_NUL_PATTERN and node.get("minLength", 0) >= 1:
            node["pattern"] = NOT_BLANK_PATTERN
    event = components.get("PhiAccess", {}).get("properties", {})
    attributes = event.get("attributes")
    if attributes is not None and "patternProperties" in attributes:
        attributes["additionalProperties"] = False
        for value_schema in attributes["patternProperties"].values():
            for option in value_schema.get("anyOf", ()):
                if option.get("type") == "string":
                    option["pattern"] = NO_NUL_PATTERN
    events = components.get("EventBatch", {}).get("properties", {}).get("events")
    if events is not None:
        events["maxItems"] = settings.max_batch_events


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            found.append(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found
