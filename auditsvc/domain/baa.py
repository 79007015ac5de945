"""Business associate agreements judged day by day, from the registry's history.

Every registry change is an event in the chain (domain/systems.py), so the
registry as it stood on any day is known. A flow's events on day ``D`` are
judged against the entry *in force* on ``D``: the newest version recorded
on or before ``D`` (UTC); for days before a system's first version, that
first version (a registry filled in after the fact describes the past as
best it knows). Judging by day, not by the instant, matches the BAA's own
dates, which are days.

A party needs a BAA when its relationship is ``business_associate`` or
``subcontractor``. On day ``D`` its BAA is

- ``covered``: ``on_file``, ``effective <= D`` and (no ``expires`` or ``D <= expires``);
- ``not_yet_effective``: ``on_file`` but ``D < effective``;
- ``expired``: ``on_file`` but ``D > expires``;
- ``none``: any other status (``none``, or ``not_required``, which a
  business associate cannot claim: 45 CFR 164.502(e));

a party that needs none is ``not_required``, and a system with no registry
entry at all ``unregistered``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from .systems import unregistered

NEEDS_BAA = ("business_associate", "subcontractor")
UNCOVERED = ("none", "expired", "not_yet_effective")
BaaState = Literal["covered", "none", "expired", "not_yet_effective", "not_required", "unregistered"]


def needs_baa(entry: dict[str, Any]) -> bool:
    return bool(entry.get("registered")) and entry.get("relationship") in NEEDS_BAA


def baa_state(entry: dict[str, Any], day: date) -> BaaState:
    """The BAA state of ``entry`` (one registry version) on ``day``."""
    if not entry.get("registered"):
        return "unregistered"
    if entry.get("relationship") not in NEEDS_BAA:
        return "not_required"
    baa = entry.get("baa") or {}
    if baa.get("status") != "on_file" or not baa.get("effective"):
        return "none"
    if day < date.fromisoformat(baa["effective"]):
        return "not_yet_effective"
    if baa.get("expires") and day > date.fromisoformat(baa["expires"]):
        return "expired"
    return "covered"


def _recorded_day(entry: dict[str, Any]) -> date:
    return datetime.fromisoformat(entry["recorded"]["at"].replace("Z", "+00:00")).date()


@dataclass
class RegistryTimeline:
    """Each system's registry versions, oldest first."""

    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _days: dict[str, list[date]] = field(default_factory=dict)

    @classmethod
    def of(cls, versions: Iterable[dict[str, Any]]) -> RegistryTimeline:
        timeline = cls()
        for entry in versions:  # oldest first
            timeline.versions.setdefault(entry["system_id"], []).append(entry)
            timeline._days.setdefault(entry["system_id"], []).append(_recorded_day(entry))
        return timeline

    def on(self, system_id: str, day: date) -> dict[str, Any]:
        """The entry in force on ``day``."""
        found = self.versions.get(system_id)
        if not found:
            return unregistered(system_id)
        index = bisect.bisect_right(self._days[system_id], day) - 1
        return found[max(index, 0)]

    def current(self, system_id: str) -> dict[str, Any]:
        found = self.versions.get(system_id)
        return found[-1] if found else unregistered(system_id)

    def state(self, system_id: str, day: date) -> BaaState:
        return baa_state(self.on(system_id, day), day)


def party(entry: dict[str, Any]) -> dict[str, Any]:
    """A system as a side of a flow: who it is and its BAA (no PHI)."""
    return {
        "system_id": entry["system_id"],
        "registered": entry["registered"],
        "name": entry["name"],
        "organization": entry["organization"],
        "relationship": entry["relationship"],
        "baa": entry["baa"],
    }
