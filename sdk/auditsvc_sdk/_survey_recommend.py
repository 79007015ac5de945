"""The helper settings the survey recommends for a site, each with the evidence for it.

* ``default_tz``: needed when message times carry no UTC offset. When some
  do, the zones whose offset on those dates matches every offset seen are
  the candidates (``-0500`` in July and ``-0600`` in January is Chicago);
  when none does, the survey cannot know and says so.
* ``source`` (the fallback assigning authority): needed when identifiers
  have no CX-4 and the message names no sending system either.
* the identifier system mapping: every assigning authority and FHIR system
  seen, with the canonical system the helpers' table maps it to, if any.
* placeholders: the placeholder values seen (printed only because they
  identify nobody), and how many identifier values are shared by patients
  with different names or birth dates (never printed).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ._survey_hl7 import HL7Stats
from ._survey_settings import SurveySettings

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


def _source(settings: SurveySettings, hl7: dict[str, Any]) -> dict[str, Any]:
    by_sender = hl7["identifiers_without_authority_by_sender"]
    nameless = by_sender.get("(none)", 0)
    total = sum(by_sender.values())
    evidence = {"identifiers_without_authority": total, "by_sending_system": by_sender}
    if nameless:
        why = (
            f"{nameless} identifiers have no assigning authority (CX-4) in messages that name no sending "
            "system (MSH-3/MSH-4): pass source= (the channel's sending system id) so they are still qualified"
        )
        return {
            "setting": "source",
            "value": settings.source or "<sending system id>",
            "why": why,
            "evidence": evidence,
        }
    if total:
        why = (
            f"{total} identifiers have no assigning authority (CX-4): the helpers qualify them with the "
            "sending system (MSH-4, else MSH-3); keep those names stable, or map them to the site's OID"
        )
        return {"setting": "source", "value": settings.source, "why": why, "evidence": evidence}
    why = "every identifier names its assigning authority"
    return {"setting": "source", "value": settings.source, "why": why, "evidence": evidence}


def _canonical(system: str, id_type: str = "") -> str | None:
    """The canonical system the helpers' identifier table gives a spelling, if the table knows it."""
    try:
        from ._identifiers import DEFAULT_SYSTEMS, DEFAULT_TYPE_SYSTEMS
    except ImportError:  # the identifier table arrives with the best-effort helpers
        return None
    keys: dict[str, str] = {k.lower(): v for k, v in DEFAULT_SYSTEMS.items()}
    for candidate in (system, system.split(" (", 1)[-1].rstrip(")"), system.split(" (", 1)[0]):
        if candidate.lower() in keys:
            return keys[candidate.lower()]
    by_type: dict[str, str] = dict(DEFAULT_TYPE_SYSTEMS)
    return by_type.get(id_type.upper()) if id_type else None


def _systems(hl7: dict[str, Any], fhir: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for row in hl7["identifiers"]:
        authority, id_type = row["authority"], row["type"]
        canonical = _canonical(authority, id_type) if authority != "(none)" else _canonical("", id_type)
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
        canonical = _canonical(system)
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
    try:
        from ._identifiers import DEFAULT_PLACEHOLDERS

        known = {p.upper() for p in DEFAULT_PLACEHOLDERS}
    except ImportError:
        known = set()
    missing = sorted(v for v in seen if v not in known and v.replace("-", "") not in known)
    parts = [f"{sum(seen.values())} placeholder identifier values seen ({len(seen)} distinct)"]
    if missing:
        parts.append("add " + ", ".join(missing) + " to the placeholders")
    if shared:
        n = sum(r["values"] for r in shared)
        parts.append(
            f"{n} identifier values are carried by patients with different names or birth dates: "
            "likely placeholders of the site's own (shapes listed; add them to the placeholders)"
        )
    return {
        "setting": "placeholders",
        "value": dict(seen.most_common()),
        "why": "; ".join(parts),
        "evidence": {"not_in_helpers_table": missing, "shared_identifiers": shared},
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
        out += [_default_tz(settings, hl7, stats), _source(settings, hl7)]
    out += [_systems(hl7, fhir), _placeholders(hl7, fhir)]
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
