"""From request bytes to prepared events: decode, validate, bind to the emitter.

A batch is accepted whole or rejected whole; nothing here touches storage.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any, TypeVar

from auditsvc_sdk import PhiAccess, RecordTemplate
from auditsvc_sdk.chain import SEALED_RECORD_VERSION
from auditsvc_sdk.wire import NO_NUL_PATTERN, WireEvent, parse_event_batch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..keys import ServerKeys
from ..store.readmodel import event_facts
from .append_types import PreparedEvent
from .errors import Forbidden, InvalidInput, MalformedBody, invalid_events, refused_events
from .reserved import is_reserved_system


class EventBatch(BaseModel):
    """The documented body of ``POST /v1/events`` (OpenAPI). Requests are
    validated by ``parse_event_batch``, the same schema without model objects."""

    model_config = ConfigDict(extra="forbid")
    events: list[PhiAccess] = Field(min_length=1)


# pydantic reports every bad value; a hostile body can hold hundreds of
# thousands, and turning them all into dicts costs seconds. List the first ones.
MAX_LISTED_ERRORS = 100
M = TypeVar("M", bound=BaseModel)


def _first_errors(exc: ValidationError) -> list[Any]:
    if exc.error_count() <= MAX_LISTED_ERRORS:
        return exc.errors(include_url=False, include_input=False)
    # Serialised in Rust, then only the first entries decoded: ~0.2 us an error.
    text = exc.json(include_url=False, include_input=False)
    decoder, at = json.JSONDecoder(), 1
    errors: list[Any] = []
    while len(errors) < MAX_LISTED_ERRORS:
        err, at = decoder.raw_decode(text, at)
        errors.append(err)
        at += 1  # the comma
    return errors


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without the offending input (it may be PHI); at most
    ``MAX_LISTED_ERRORS`` of them (``exc.error_count()`` has the total)."""
    errors = []
    for err in _first_errors(exc):
        msg, kind = err["msg"], err["type"]
        if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_NUL_PATTERN:
            msg, kind = "must not contain NUL (\\u0000) characters: PostgreSQL text cannot store them", "value_error"
        errors.append({"loc": list(err["loc"]), "msg": msg, "type": kind})
    return errors


def decode_json_body(body: bytes) -> None:
    """Raise ``MalformedBody`` naming the byte offset of invalid UTF-8."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"request body is not valid UTF-8 (byte offset {exc.start})") from None


def parse_body(model: type[M], body: bytes, what: str) -> M:
    """A request body from raw bytes: 400 for bytes that are not JSON, 422
    naming each invalid field (values never quoted) of the ``what``."""
    decode_json_body(body)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedBody("request body is not valid JSON") from None
        raise InvalidInput(f"{len(errors)} invalid field(s) in the {what}", errors) from None


def parse_params(model: type[M], params: dict[str, Any], what: str) -> M:
    """A request's query parameters (those given: None is absent), 422
    naming each invalid one (values never quoted) of the ``what``."""
    try:
        return model.model_validate({k: v for k, v in params.items() if v is not None})
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise InvalidInput(f"{len(errors)} invalid parameter(s) in the {what}", errors) from None


def parse_batch(body: bytes, max_events: int) -> list[WireEvent]:
    decode_json_body(body)
    try:
        events = parse_event_batch(body)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedBody("request body is not valid JSON") from None
        raise InvalidInput(
            f"{exc.error_count()} invalid field(s) in the batch; nothing was stored", errors, invalid_events(errors)
        ) from None
    if len(events) > max_events:
        raise InvalidInput(
            f"a batch holds at most {max_events} events, this one has {len(events)}; nothing was stored",
            [{"loc": ["events"], "msg": f"at most {max_events} events per batch", "type": "too_long"}],
        )
    return events


def _refuse(bad: list[int], what: str) -> None:
    """403 naming the first refused event and listing every one (``refused``)."""
    if bad:
        raise Forbidden(
            f"events[{bad[0]}]{what} ({len(bad)} event{'s' if len(bad) > 1 else ''} refused, "
            "listed in 'refused'); nothing was stored",
            refused_events(bad, "source_not_allowed"),
        )


def check_source_systems(events: Iterable[WireEvent], allowed: Iterable[str]) -> None:
    """An emitter may only claim the source systems its token is bound to;
    the refusal lists every event that claims another (``refused``)."""
    allowed_set = {system for system in allowed if not is_reserved_system(system)}
    bad = [i for i, event in enumerate(events) if event.json["source"]["system_id"] not in allowed_set]
    _refuse(bad, ".source.system_id is not a system this token may emit for")


def reported_by_a_party(source: str, destination: str, allowed: Collection[str]) -> bool:
    """IHE ATNA and BALP have both parties of an exchange audit it: the
    importing system's record of an import, and the querying system's of a
    query, name the other party as the source. Through the standard feeds
    (FHIR AuditEvent, ATNA syslog) a sender may therefore report an event
    whose source or destination is one of its systems; the source is never
    one of the service's reserved systems, nor is a reserved one the party."""
    if is_reserved_system(source):
        return False
    return source in allowed or (destination in allowed and not is_reserved_system(destination))


def check_reporting_parties(events: Iterable[WireEvent], allowed: Collection[str]) -> None:
    """``check_source_systems`` for the standard feeds: each event's source or
    destination must be a system the token may emit for (``reported_by_a_party``)."""
    bad = [
        i
        for i, event in enumerate(events)
        if not reported_by_a_party(event.json["source"]["system_id"], event.json["destination"]["system_id"], allowed)
    ]
    _refuse(bad, " has neither its source nor its destination among the systems this token may emit for")


def prepare(events: Sequence[WireEvent], keys: ServerKeys, emitter: str) -> list[PreparedEvent]:
    """Everything about ``emitter``'s events that can be computed outside the
    append lock, identifiers sealed: the stored record (format 2) carries each
    identifier's system, its value encrypted and its lookup hash, never the
    value in clear."""
    sealer = keys.sealer
    if sealer is None:
        raise RuntimeError("events cannot be stored without the identifier encryption keys")
    prepared = []
    for event in events:
        body = event.json
        patient = body["patient"]
        identifiers = []
        stored = []
        for i in patient["identifiers"]:
            system, value = i["system"], i["value"]
            id_hmac = keys.identifier_hmac(system, value)
            sealed = sealer.seal(system, value)
            identifiers.append((id_hmac, system, sealed))
            stored.append({"system": system, "value_enc": sealed, "value_hmac": id_hmac.hex()})
        record = {**body, "patient": {**patient, "identifiers": stored}}
        prepared.append(
            PreparedEvent(
                event_id=event.event_id,
                template=RecordTemplate(record, emitter=emitter, version=SEALED_RECORD_VERSION),
                occurred_at=event.occurred_at,
                identifiers=tuple(identifiers),
                facts=event_facts(body, emitter),
            )
        )
    return prepared
