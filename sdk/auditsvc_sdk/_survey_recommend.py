"""The helper settings the survey recommends for a site, each with the evidence for it.

* ``default_tz``: needed when message times carry no UTC offset. When some
  do, the zones whose offset on those dates matches every offset seen are
  the candidates (``-0500`` in July and ``-0600`` in January is Chicago);
  when none does, the survey cannot know and says so.
* ``default_authority`` (the fallback assigning authority): needed when
  identifiers have no CX-4 and the message names no sending system either.
* the identifier system mapping: every assigning authority and FHIR system
  seen, with the canonical system the helpers' identifier policy maps it
  to, if any.
* placeholders: the placeholder values seen (printed only when they carry
  no real digits; a masked ``XXX-XX-1234`` is printed as its shape), and
  how many identifier values are shared by patients with different names
  or birth dates (never printed).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ._survey_hl7 import HL7Stats
from ._survey_settings import SurveySettings
from .helpers import IdentifierPolicy

__all__ = ["candidate_zones", "recommendations"]

# Zones tried when inferring default_tz from the offsets seen, most common first.
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "America/Halifax",
    "America/St_Johns",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Helsinki",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Perth",
    "Pacific/Auckland",
    "UTC",
)


def _offset_minutes(offset: str) -> int:
    sign = -1 if offset[0] == "-" else 1
    return sign * (int(offset[1:3]) * 60 + int(offset[3:5]))


def candidate_zones(offsets_by_month: dict[str, Counter[str]]) -> list[str]:
    """Zones whose UTC offset in mid-month matches every offset seen that month."""
    candidates = []
    for name in ZONES:
        zone = ZoneInfo(name)
        fits = True
        for month, offsets in offsets_by_month.items():
            year, mon = int(month[:4]), int(month[5:7])
            if not (1 <= mon <= 12 and 1900 <= year <= 2200):
                continue
            # Mid-month at noon, and the first and last day: an offset seen must be one the zone used that month.
            used = set()
            for day in (1, 15, 28):
                probe = datetime(year, mon, day, 12, tzinfo=zone).utcoffset()
                if probe is not None:
                    used.add(int(probe.total_seconds() // 60))
            if any(_offset_minutes(o) not in used for o in offsets):
                fits = False
                break
        if fits:
            candidates.append(name)
    return candidates


def _default_tz(settings: SurveySettings, hl7: dict[str, Any], stats: HL7Stats) -> dict[str, Any]:
    times = hl7["message_time"]
    without = sum(n for k, n in times.items() if "without offset" in k or "fraction without" in k)
    with_offset = sum(n for k, n in times.items() if "with offset" in k)
    candidates = candidate_zones(dict(stats.offsets_by_month)) if with_offset else []
    evidence = {"times_without_offset": without, "times_with_offset": with_offset, "offsets_seen": hl7["utc_offsets"]}
    if settings.default_tz:
        fits = (
            not with_offset
            or settings.default_tz in candidate_zones(dict(stats.offsets_by_month))
            or (settings.default_tz not in ZONES)
        )
        why = f"as given; {without} message times have no UTC offset and are read in it"
        if not fits:
            why += "; the offsets the other times carry do not fit this zone: check it"
        return {"setting": "default_tz", "value": settings.default_tz, "why": why, "evidence": evidence}
    if not without:
        why = "every message time carries its UTC offset (set default_tz anyway, to the senders' zone)"
        return {"setting": "default_tz", "value": None, "why": why, "evidence": evidence}
    if candidates:
        why = (
            f"{without} message times have no UTC offset; the offsets the other {with_offset} carry fit "
            + ", ".join(candidates[:3])
            + ": confirm with the sending system's owner"
        )
        return {"setting": "default_tz", "value": candidates[0], "why": why, "evidence": evidence}
    why = (
        f"{without} message times have no UTC offset and nothing shows the zone: ask the sending "
        "system's owner. Without default_tz the helpers read them in this host's zone and flag it"
    )
    return {"setting": "default_tz", "value": None, "why": why, "evidence": evidence}


def _default_authority(settings: SurveySettings, hl7: dict[str, Any]) -> dict[str, Any]:
    by_sender = hl7["identifiers_without_authority_by_sender"]
    nameless = by_sender.get("(none)", 0)
    total = sum(by_sender.values())
    evidence = {"identifiers_without_authority": total, "by_sending_system": by_sender}
    setting = "default_authority"
    if nameless:
        why = (
            f"{nameless} identifiers have no assigning authority (CX-4) in messages that name no sending "
            "system (MSH-3/MSH-4): pass default_authority= (the site's MRN authority, e.g. its OID) "
            "so they are qualified by it and not by a placeholder system"
        )
        value = settings.default_authority or "<the site's assigning authority>"
        return {"setting": setting, "value": value, "why": why, "evidence": evidence}
    if total:
        why = (
            f"{total} identifiers have no assigning authority (CX-4): the helpers qualify them with the "
            "sending system (MSH-4, else MSH-3), as listed; pass default_authority= when one authority "
            "issues them all, so the same number from two senders links"
        )
        return {"setting": setting, "value": settings.default_authority, "why": why, "evidence": evidence}
    why = "every identifier names its assigning authority"
    return {"setting": setting, "value": settings.default_authority, "why": why, "evidence": evidence}


def _canonical(policy: IdentifierPolicy, authority: str, id_type: str = "") -> str | None:
    """The canonical system the helpers' identifier policy gives an authority (and CX-5 type), if it knows one."""
    namespace, _, universal = authority.partition(" (")
    universal = universal.rstrip(")")
    known = set(policy.systems.values())
    for candidate in (universal, namespace, authority):
        if candidate and candidate != "(none)":
            canonical = policy.canonical_system(candidate)
            if canonical != candidate or canonical in known:
                return canonical
    if id_type.upper() == "DL" and namespace:
        return policy.state_driver_licence(namespace)
    return policy.system_for_type(id_type) if id_type else None


def _systems(policy: IdentifierPolicy, hl7: dict[str, Any], fhir: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for row in hl7["identifiers"]:
        authority, id_type = row["authority"], row["type"]
        canonical = _canonical(policy, authority, id_type)
        if canonical:
            note = "canonical" if canonical == authority else f"the helpers record it as {canonical}"
        elif authority == "(none)":
            note = "no CX-4: qualified by the sending system"
        elif "(" in authority or authority.startswith("urn:"):
            note = "universal id: recorded as is"
        else:
            note = f"local namespace: recorded as {authority}^{id_type or 'type'}; map it if FHIR uses another system"
        rows.append(
            {
                "from": f"{row['field']} {authority}" + (f" ^{id_type}" if id_type else ""),
                "count": row["count"],
                "maps_to": canonical,
                "note": note,
            }
        )
    for row in fhir["identifiers"]:
        system = row["system"]
        canonical = _canonical(policy, system)
        note = (
            "canonical"
            if canonical == system
            else (f"the helpers record it as {canonical}" if canonical else "recorded as is")
        )
        rows.append({"from": f"FHIR {row['in']} {system}", "count": row["count"], "maps_to": canonical, "note": note})
    spellings = Counter(r["maps_to"] for r in rows if r["maps_to"])
    merged = {system: n for system, n in spellings.items() if n > 1}
    why = "every assigning authority and FHIR system seen, and what the helpers' table makes of it"
    if merged:
        why += "; " + ", ".join(f"{n} spellings of {s} are linked as one" for s, n in merged.items())
    return {"setting": "identifier_systems", "value": rows, "why": why, "evidence": {"spellings_merged": merged}}


def _placeholders(hl7: dict[str, Any], fhir: dict[str, Any]) -> dict[str, Any]:
    seen = Counter(hl7["placeholders"]) + Counter(fhir["placeholders"])
    shared = hl7["shared_identifiers"]
    parts = [
        f"{sum(seen.values())} placeholder identifier values seen ({len(seen)} distinct): the helpers "
        "leave them out and flag placeholder_identifier, so they link nobody"
    ]
    if shared:
        n = sum(r["values"] for r in shared)
        parts.append(
            f"{n} other identifier value{'s are each' if n > 1 else ' is'} carried by patients with "
            "different names or birth dates: likely placeholders of the site's own; find them in the source "
            "system and add them to the identifier policy's placeholders (values are not shown here)"
        )
    return {
        "setting": "placeholders",
        "value": dict(seen.most_common()),
        "why": "; ".join(parts),
        "evidence": {"shared_identifiers": shared},
    }


def recommendations(
    settings: SurveySettings,
    hl7: dict[str, Any],
    fhir: dict[str, Any],
    hl7_yield: dict[str, Any],
    fhir_yield: dict[str, Any],
    stats: HL7Stats,
) -> list[dict[str, Any]]:
    """default_tz, source, identifier systems and placeholders, each with why."""
    out = []
    if hl7["messages"]:
        out += [_default_tz(settings, hl7, stats), _default_authority(settings, hl7)]
    out += [_systems(settings.policy(), hl7, fhir), _placeholders(hl7, fhir)]
    if fhir["documents"] and not settings.fhir_base:
        refs = fhir["references"]
        relative = sum(n for k, n in refs.items() if k.endswith("relative"))
        if relative:
            out.append(
                {
                    "setting": "fhir_base",
                    "value": None,
                    "why": f"{relative} references are relative: pass fhir_base= (the server's base URL) "
                    "so they resolve",
                    "evidence": {"relative_references": relative},
                }
            )
    return out
