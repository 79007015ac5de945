"""Patients among a set of events: counted by linked identifiers, listed per page.

Identifiers seen together in one event are one patient; the links are
stored as a star from each event's first identifier (store/append.py), so
two identifiers of one patient that appear in the events counted are
usually one or two steps apart. ``count_patients`` follows the links from
the keys found for ``LINK_ROUNDS`` steps, at most ``LINKS_PER_KEY`` each, and
counts the connected groups: exact for identifiers joined within those
steps, an overcount (never an undercount) beyond.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..store import access_reports as queries
from ..store.session import Connection

LINK_ROUNDS = 2
LINKS_PER_KEY = 50


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


async def count_patients(conn: Connection, log_id: int, keys: list[bytes]) -> int:
    """Distinct patients among identifier keys ``keys`` (see the module docstring)."""
    if not keys:
        return 0
    groups = _Groups()
    for key in keys:
        groups.find(key)
    seen = set(keys)
    frontier = list(keys)
    for _ in range(LINK_ROUNDS):
        links = await queries.identifier_links(conn, log_id, frontier, LINKS_PER_KEY)
        frontier = []
        for a, b in links:
            groups.join(a, b)
            if b not in seen:
                seen.add(b)
                frontier.append(b)
        if not frontier:
            break
    return len({groups.find(k) for k in keys})


def page_patients(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The patients of a page of (revealed) records, each once: records that
    share an identifier are one patient, listed with all its identifiers."""
    groups = _Groups()
    order: list[tuple[str, str]] = []
    for record in records:
        ids = [(i["system"], i["value"]) for i in record["patient"]["identifiers"]]
        for ident in ids:
            if ident not in groups.parent:
                order.append(ident)
            groups.join(ids[0], ident)
    members: dict[Any, list[tuple[str, str]]] = {}
    for ident in order:
        members.setdefault(groups.find(ident), []).append(ident)
    return [{"identifiers": [{"system": s, "value": v} for s, v in sorted(ids)]} for ids in members.values()]
