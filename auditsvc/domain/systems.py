"""The system registry: who each system id is, and whether a BAA covers it.

An entry names a system (display name, organisation, address), its
relationship to the covered entity and its business associate agreement.
Every change is an event in the chain, appended by the service itself
(source ``auditsvc``, event type ``system-registry-change``, the admin as
actor, the system as subject ``urn:auditsvc:system|<system_id>``, the entry
in ``attributes``); the registry is read back from those events through the
read model (store/systems.py), so there is no separate table a database
administrator could edit without ``auditsvc verify`` noticing. Only events
whose source is ``auditsvc`` count: an emitter cannot write as the service.

System ids that were never registered work everywhere: they read back as
``{"system_id": ..., "registered": false}`` with every other field null.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.wire import NO_NUL_PATTERN, wire_event
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ..runtime import AuditLog
from ..store import systems as queries
from ..store.session import driver_connection
from .backfill import require_read_model
from .errors import InvalidInput
from .ingest import parse_body, prepare, validation_errors
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller

REGISTRY_EVENT_TYPE = "system-registry-change"
REGISTRY_DESTINATION = f"{SERVICE_SYSTEM_ID}:system-registry"
SUBJECT_SYSTEM = "urn:auditsvc:system"
"""The identifier system of a registry event's subject (not a patient)."""
REGISTRY_KIND = queries.RegistryKind(SERVICE_SYSTEM_ID, REGISTRY_DESTINATION, REGISTRY_EVENT_TYPE)

RELATIONSHIPS = ("workforce", "covered_entity", "business_associate", "subcontractor", "external_recipient")
BAA_STATUSES = ("on_file", "none", "not_required")
Relationship = Literal["workforce", "covered_entity", "business_associate", "subcontractor", "external_recipient"]
BaaStatus = Literal["on_file", "none", "not_required"]

# The events' system id syntax (auditsvc_sdk's SystemRef.system_id).
SYSTEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}$"
_SYSTEM_ID = re.compile(SYSTEM_ID_PATTERN)
MAX_IMPORT_ROWS = 5000


def _text(max_length: int) -> Any:
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length, pattern=NO_NUL_PATTERN)
    ]


def _iso_date(value: Any) -> Any:
    # Only YYYY-MM-DD: pydantic alone would also take a number as Unix seconds.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date, YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class Baa(BaseModel):
    """A business associate agreement: ``on_file`` needs the date it took effect."""

    model_config = ConfigDict(extra="forbid")

    status: BaaStatus
    effective: IsoDate | None = None
    expires: IsoDate | None = None
    reference: _text(256) | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _dates_in_order(self) -> Baa:
        if self.status == "on_file" and self.effective is None:
            raise ValueError("a BAA on file needs its 'effective' date")
        if self.effective is not None and self.expires is not None and self.expires < self.effective:
            raise ValueError("'expires' is before 'effective'")
        return self


SystemId = Annotated[str, StringConstraints(pattern=SYSTEM_ID_PATTERN)]


class SystemEntryIn(BaseModel):
    """Body of ``PUT /v1/systems/{system_id}``: the whole entry (it replaces
    the previous one). ``system_id``, if given, must be the one in the URL."""

    model_config = ConfigDict(extra="forbid")

    system_id: SystemId | None = None
    name: _text(256)  # type: ignore[valid-type]
    organization: _text(256) | None = None  # type: ignore[valid-type]
    address: _text(1024) | None = None  # type: ignore[valid-type]
    relationship: Relationship
    baa: Baa


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"loc": [field], "msg": message, "type": "value_error"}])


def check_system_id(system_id: str) -> str:
    """The system id of a URL, or a 422 naming ``system_id``."""
    if not _SYSTEM_ID.match(system_id):
        raise _invalid("system_id", "not a system id (1-128 of A-Z a-z 0-9 _ . : / @ + ~ -)")
    return system_id


def parse_entry(body: bytes, system_id: str) -> SystemEntryIn:
    """The PUT body from raw bytes, errors named by field."""
    check_system_id(system_id)
    entry = parse_body(SystemEntryIn, body, "registry entry")
    if entry.system_id is not None and entry.system_id != system_id:
        raise _invalid("system_id", "differs from the system id in the URL")
    return entry.model_copy(update={"system_id": system_id})


# --- events <-> entries ------------------------------------------------------


def _attributes(entry: SystemEntryIn) -> dict[str, str]:
    assert entry.system_id is not None
    values = {
        "system_id": entry.system_id,
        "name": entry.name,
        "organization": entry.organization,
        "address": entry.address,
        "relationship": entry.relationship,
        "baa_status": entry.baa.status,
        "baa_effective": entry.baa.effective.isoformat() if entry.baa.effective else None,
        "baa_expires": entry.baa.expires.isoformat() if entry.baa.expires else None,
        "baa_reference": entry.baa.reference,
    }
    return {k: v for k, v in values.items() if v is not None}


def registry_event(entry: SystemEntryIn, admin: Caller) -> PhiAccess:
    """The chain event recording ``entry`` as ``admin``'s change."""
    assert entry.system_id is not None
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="U",
        event_type=REGISTRY_EVENT_TYPE,
        patient={"identifiers": [Identifier(system=SUBJECT_SYSTEM, value=entry.system_id)]},
        data_elements=["SystemRegistryEntry"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": REGISTRY_DESTINATION},
        actor={"id": admin.token_id, "type": "user", "role": admin.role.value, "name": admin.name},
        outcome=0,
        attributes=_attributes(entry),
    )


def unregistered(system_id: str) -> dict[str, Any]:
    return {
        "system_id": system_id,
        "name": None,
        "organization": None,
        "address": None,
        "relationship": None,
        "baa": None,
        "registered": False,
        "recorded": None,
    }


def _entry_from_record(seq: int, record_json: str) -> dict[str, Any]:
    record = json.loads(record_json)
    a = record.get("attributes") or {}
    return {
        "system_id": a["system_id"],
        "name": a.get("name"),
        "organization": a.get("organization"),
        "address": a.get("address"),
        "relationship": a.get("relationship"),
        "baa": {
            "status": a.get("baa_status"),
            "effective": a.get("baa_effective"),
            "expires": a.get("baa_expires"),
            "reference": a.get("baa_reference"),
        },
        "registered": True,
        "recorded": {"seq": seq, "at": record["received_at"], "by": record["actor"]["id"]},
    }


def _same(current: dict[str, Any], entry: SystemEntryIn) -> bool:
    if not current["registered"]:
        return False
    return {k: v for k, v in current.items() if k not in ("registered", "recorded")} == entry.model_dump(mode="json")


# --- reads -------------------------------------------------------------------


async def registry_entries(audit: AuditLog, system_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The registry entry of every id asked (``registered: false`` for one
    never registered). Reads one registry history per id, whatever the
    size of the log."""
    ids = list(dict.fromkeys(system_ids))
    if not ids:
        return {}
    hmacs = [audit.keys.identifier_hmac(SUBJECT_SYSTEM, i) for i in ids]
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        found = await queries.newest_entries(conn, audit.log_id, hmacs, REGISTRY_KIND)
    out: dict[str, dict[str, Any]] = {}
    for index, system_id in enumerate(ids):
        hit = found.get(index)
        entry = _entry_from_record(*hit) if hit is not None else None
        # The subject hash names the id; the attributes must agree with it.
        out[system_id] = entry if entry is not None and entry["system_id"] == system_id else unregistered(system_id)
    return out


async def registry_versions(audit: AuditLog) -> list[dict[str, Any]]:
    """Every entry ever recorded, oldest first (each with its ``recorded``
    seq and time): the registry as it stood at any moment."""
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        history = await queries.registry_history(conn, audit.log_id, REGISTRY_KIND)
    return [_entry_from_record(seq, record) for seq, record in history]


async def list_registry(audit: AuditLog) -> list[dict[str, Any]]:
    """Every registered system's current entry, by system id."""
    current: dict[str, dict[str, Any]] = {}
    for entry in await registry_versions(audit):  # oldest first: the newest wins
        current[entry["system_id"]] = entry
    return [current[k] for k in sorted(current)]


# --- writes ------------------------------------------------------------------


async def set_entries(audit: AuditLog, admin: Caller, entries: Sequence[SystemEntryIn]) -> list[dict[str, Any]]:
    """Record ``entries`` (each with its ``system_id``) in one append: all or
    none. An entry identical to the current one appends nothing. Returns
    each system's entry as now stored."""
    ids = [e.system_id for e in entries]
    if None in ids or len(set(ids)) != len(ids):
        raise _invalid("system_id", "each entry needs its own system id, once")
    current = await registry_entries(audit, [i for i in ids if i is not None])
    changed = [e for e in entries if not _same(current[str(e.system_id)], e)]
    if changed:
        events = [wire_event(registry_event(e, admin)) for e in changed]
        await audit.appender.append_batch(prepare(events, audit.keys, admin.token_id))
    fresh = await registry_entries(audit, [i for i in ids if i is not None])
    return [fresh[str(i)] for i in ids]


async def set_entry(audit: AuditLog, admin: Caller, entry: SystemEntryIn) -> dict[str, Any]:
    [stored] = await set_entries(audit, admin, [entry])
    return stored


# --- CSV import --------------------------------------------------------------

CSV_COLUMNS = (
    "system_id",
    "name",
    "organization",
    "address",
    "relationship",
    "baa_status",
    "baa_effective",
    "baa_expires",
    "baa_reference",
)
REQUIRED_COLUMNS = ("system_id", "name", "relationship", "baa_status")


class ImportErrors(InvalidInput):
    """A CSV import refused whole: ``lines`` holds (line number, message) per bad row."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(lines)} bad row(s); nothing was imported")
        self.lines = lines


def _row_entry(row: dict[str, str]) -> SystemEntryIn:
    def cell(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    return SystemEntryIn.model_validate(
        {
            "system_id": cell("system_id") or "",
            "name": cell("name") or "",
            "organization": cell("organization"),
            "address": cell("address"),
            "relationship": cell("relationship") or "",
            "baa": {
                "status": cell("baa_status") or "",
                "effective": cell("baa_effective"),
                "expires": cell("baa_expires"),
                "reference": cell("baa_reference"),
            },
        }
    )


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in validation_errors(exc):
        loc = [str(p) for p in err["loc"]]
        field = "baa_" + loc[1] if loc[:1] == ["baa"] and len(loc) > 1 else "_".join(loc) or "row"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def parse_import(text: str) -> list[SystemEntryIn]:
    """The entries of a registry CSV (a header row naming ``CSV_COLUMNS``;
    ``system_id, name, relationship, baa_status`` required). Every bad row
    is reported by its line number, and then nothing is imported."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        detail = ", ".join([f"missing column {c}" for c in missing] + [f"unknown column {c!r}" for c in unknown])
        raise ImportErrors([(1, detail)])
    entries: list[SystemEntryIn] = []
    errors: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    line = reader.line_num
    for row in reader:
        line, start = reader.line_num, line + 1  # a quoted cell may span lines: report where the row starts
        if None in row:
            errors.append((start, "more cells than columns"))
            continue
        try:
            entry = _row_entry(row)
        except ValidationError as exc:
            errors.append((start, _describe(exc)))
            continue
        assert entry.system_id is not None
        if entry.system_id in first_line:
            errors.append((start, f"system_id: already given on line {first_line[entry.system_id]}"))
            continue
        first_line[entry.system_id] = start
        entries.append(entry)
    if len(entries) + len(errors) > MAX_IMPORT_ROWS:
        raise ImportErrors([(line, f"at most {MAX_IMPORT_ROWS} rows per import")])
    if errors:
        raise ImportErrors(errors)
    return entries
