"""ITI-81: search and read AuditEvents; every search page and every read is
itself recorded in the chain as BALP's "Audit Log Used" before the answer
leaves the service.

Paging holds one snapshot: the first page fixes the tree size (``as_of``)
and every later page reads only events below it, continuing after the last
(occurred_at, seq) the previous page examined. The ``next`` and ``self``
links carry only ``_page``: the search parameters, the snapshot and the
position, sealed with the service's identifier key (AES-GCM, as stored
identifiers are), so no patient identifier travels in a URL.

A page scans at most ``scan_budget(count)`` rows of the read model: when
the other parameters filter most of them out, the page holds fewer than
``_count`` entries (possibly none) and a ``next`` link that continues the
scan. The cost of a request is bounded by its budget, never by the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import orjson
from auditsvc_sdk import Identifier
from auditsvc_sdk.chain import format_timestamp

from ...runtime import AuditLog
from ...sealing import SealError
from ...store import fhir_search as store
from ...store.events import committed_size, event_by_id
from ...store.reports import linked_identifier_hmacs
from ...store.session import Connection, driver_connection
from ..backfill import require_read_model
from ..cursors import BEFORE_ALL, MAX_SEQ
from ..tokens import Caller, Role
from .audit_event import ChainPosition, Reveal, to_audit_event
from .outcome import FhirError, invalid_parameter
from .read_record import record_fhir_read, revealer
from .search_filter import Driver, choose_driver, matches_facts, matches_record
from .search_params import PHI_PARAMETERS, SearchQuery, parse_search

PAGE_SEAL_SYSTEM = "urn:auditsvc:fhir-search-page"
"""Associated data of a sealed ``_page``: a page token opens only as one."""
MAX_SCAN = 5000


def scan_budget(count: int) -> int:
    """Rows of the read model one page may scan."""
    return min(max(4 * (count + 1), 1000), MAX_SCAN)


@dataclass(frozen=True)
class PageState:
    """Where a page of a search starts: the search as sent, its snapshot, its position."""

    params: tuple[tuple[str, str], ...]
    as_of: int
    after: tuple[datetime, int]


def seal_page(audit: AuditLog, state: PageState) -> str:
    sealer = audit.keys.sealer
    assert sealer is not None  # the service's keys always seal
    data = {"p": list(state.params), "m": state.as_of, "t": format_timestamp(state.after[0]), "s": state.after[1]}
    return sealer.seal(PAGE_SEAL_SYSTEM, json.dumps(data, separators=(",", ":")))


def open_page(audit: AuditLog, token: str) -> PageState:
    """A ``_page`` token this service issued; anything else is 400 naming ``_page``."""
    sealer = audit.keys.sealer
    assert sealer is not None
    try:
        data = json.loads(sealer.open(PAGE_SEAL_SYSTEM, token))
        params = tuple((str(n), str(v)) for n, v in data["p"])
        as_of, seq = data["m"], data["s"]
        if type(as_of) is not int or type(seq) is not int or not (0 <= as_of < MAX_SEQ and -1 <= seq < MAX_SEQ):
            raise ValueError("out of range")
        return PageState(params, as_of, (datetime.fromisoformat(data["t"]), seq))
    except (SealError, ValueError, KeyError, TypeError):
        raise invalid_parameter("_page", "not a page link this server issued (or issued under a retired key)") from None


async def _patient_hmacs(conn: Connection, audit: AuditLog, query: SearchQuery) -> list[bytes]:
    """The keyed hashes of every identifier linked to the searched patient (all conditions at once)."""
    found: set[bytes] | None = None
    for tokens in query.patients:
        hmacs: set[bytes] = set()
        for token in tokens:
            if token.system:  # "|value" (no system) matches nothing: every stored identifier has one
                own = audit.keys.identifier_hmac(token.system, token.value)
                hmacs.update(await linked_identifier_hmacs(conn, audit.log_id, own))
        found = hmacs if found is None else found & hmacs
    return sorted(found or set())


async def _scan(
    conn: Connection, audit: AuditLog, query: SearchQuery, driver: Driver, scan: store.Scan
) -> list[store.ScannedFact]:
    if driver.kind == "ids":
        ids = set.intersection(*(set(i) for i in query.ids))
        return await store.scan_ids(conn, audit.log_id, sorted(ids), scan) if ids else []
    if driver.kind == "patient":
        hmacs = await _patient_hmacs(conn, audit, query)
        return await store.scan_patient(conn, audit.log_id, hmacs, scan) if hmacs else []
    if driver.kind == "facts":
        subjects = list(driver.subjects)
        return await store.scan_facts(conn, audit.log_id, driver.columns, subjects, scan) if subjects else []
    return await store.scan_period(conn, audit.log_id, scan)


@dataclass(frozen=True)
class SearchPage:
    """A page's AuditEvents, its own state and the next page's (None at the end)."""

    resources: list[dict[str, Any]]
    state: PageState
    next_state: PageState | None


def _check_role(params: tuple[tuple[str, str], ...], query: SearchQuery, reader: Caller) -> None:
    """Only a privacy officer may search by patient: auditors see no patient identifiers."""
    if query.patients and reader.role is not Role.PRIVACY_OFFICER:
        names = sorted({n.partition(":")[0] for n, _ in params} & PHI_PARAMETERS)
        raise FhirError(403, "forbidden", "searching by patient needs the role privacy_officer", names)


async def search_page(
    audit: AuditLog, state: PageState | None, params: list[tuple[str, str]], reader: Caller
) -> SearchPage:
    """One page of a search (``state`` None: the first, of ``params``),
    recorded in the chain before it is returned."""
    asked = state.params if state else tuple(params)
    query = parse_search(asked, patient_system=audit.settings.fhir_patient_system)
    _check_role(asked, query, reader)
    reveal = revealer(audit, reader)
    async with driver_connection(audit.engine) as conn:
        await require_read_model(conn, audit.log_id)
        if state is None:
            state = PageState(asked, await committed_size(conn, audit.log_id), BEFORE_ALL)
        budget = scan_budget(query.count)
        driver = choose_driver(query)
        scanned = await _scan(
            conn, audit, query, driver, store.Scan(query.start, query.end, state.as_of, state.after, budget)
        )
        candidates = [f for f in scanned if matches_facts(query, f)]
        page = candidates[: query.count]
        if len(candidates) > query.count:
            resume: tuple[datetime, int] | None = page[-1].position
        elif len(scanned) >= budget:
            resume = scanned[-1].position
        else:
            resume = None
        stored = await store.records(conn, audit.log_id, [f.seq for f in page])
    resources = []
    for fact in page:
        row = stored[fact.seq]
        record = orjson.loads(row.record)
        received = record.get("received_at")
        if not matches_record(query, record, datetime.fromisoformat(received) if received else None):
            continue
        chain = ChainPosition(audit.log_name, row.seq, row.leaf_hash, row.chain_hash)
        resources.append(to_audit_event(record, chain, reveal))
    next_state = PageState(state.params, state.as_of, resume) if resume else None
    await record_fhir_read(
        audit,
        reader,
        "fhir-search",
        _searched_identifiers(query),
        query_text=_recorded_query(audit, state.params),
        details={
            "as_of": str(state.as_of),
            "entries": str(len(resources)),
            "first_seq": str(page[0].seq) if page else "",
            "last_seq": str(page[-1].seq) if page else "",
        },
        one_patient=False,
    )
    return SearchPage(resources, state, next_state)


async def every_match(audit: AuditLog, params: list[tuple[str, str]], reader: Caller) -> list[dict[str, Any]]:
    """Every AuditEvent a search matches, page after page (each page recorded)."""
    resources: list[dict[str, Any]] = []
    state: PageState | None = None
    while True:
        page = await search_page(audit, state, params, reader)
        resources.extend(page.resources)
        if page.next_state is None:
            return resources
        state = page.next_state


def _searched_identifiers(query: SearchQuery) -> list[Identifier]:
    found: list[Identifier] = []
    for tokens in query.patients:
        for token in tokens:
            if token.system and (token.system, token.value) not in {(i.system, i.value) for i in found}:
                found.append(Identifier(system=token.system, value=token.value))
    return found[:20]


def _recorded_query(audit: AuditLog, params: tuple[tuple[str, str], ...]) -> str:
    """The query as sent, the values of patient parameters sealed (AES-GCM,
    the parameter's name as associated data), as the chain keeps PHI."""
    sealer = audit.keys.sealer
    assert sealer is not None
    kept = []
    for name, value in params:
        if name.partition(":")[0] in PHI_PARAMETERS:
            value = sealer.seal(f"urn:auditsvc:fhir-query:{name}", value)
        kept.append((name, value))
    return urlencode(kept)


async def read_audit_event(audit: AuditLog, event_id: str, reader: Caller) -> dict[str, Any]:
    """``GET /fhir/AuditEvent/{id}``: one AuditEvent (404 when there is none), the read recorded."""
    try:
        key = UUID(event_id)
    except ValueError:
        raise FhirError(404, "not-found", "no AuditEvent with this id (ids are event_ids, UUIDs)") from None
    async with driver_connection(audit.engine) as conn:
        stored = await event_by_id(conn, audit.log_id, key)
    if stored is None:
        raise FhirError(404, "not-found", "no AuditEvent with this id")
    record = json.loads(stored.record)
    resource = to_audit_event(
        record, ChainPosition(audit.log_name, stored.seq, stored.leaf_hash, stored.chain_hash), revealer(audit, reader)
    )
    sealer = audit.keys.sealer
    assert sealer is not None
    read_patient = [Identifier(**sealer.reveal(i)) for i in (record.get("patient") or {}).get("identifiers") or []]
    await record_fhir_read(
        audit,
        reader,
        "fhir-read",
        read_patient[:20],
        query_text=None,
        details={"event_id": str(key), "seq": str(stored.seq)},
        one_patient=True,
    )
    return resource


__all__ = [
    "PageState",
    "Reveal",
    "SearchPage",
    "every_match",
    "open_page",
    "read_audit_event",
    "seal_page",
    "search_page",
]
