"""Identifier hygiene: one canonical system per identifier space, and placeholders that never link.

The service links a patient's events by ``(system, value)``. Two senders that
write the same US social security number under ``urn:oid:2.16.840.1.113883.4.1``,
``http://hl7.org/fhir/sid/us-ssn`` and ``SSN`` would leave three patients
where there is one; a ``123456789`` or ``REDACTED`` typed into the SSN field
of many records would make one patient of many. :class:`IdentifierPolicy`
mends both, in the helpers, before an event is built:

* ``systems`` maps every known spelling of a national identifier space (the
  OID bare or as ``urn:oid:``, the FHIR URI, the names sites type into CX-4)
  to one canonical system, the FHIR ``http://hl7.org/fhir/sid/...`` URI where
  there is one. Keys are compared case-insensitively. Add a site's own
  spellings with :meth:`IdentifierPolicy.with_systems`.
* ``type_systems`` maps an HL7 v2 identifier type (CX-5) to the canonical
  system when the assigning authority does not name one: ``SS`` is the SSN
  whoever wrote it, ``NPI`` the NPI, ``MC`` a Medicare number (MBI or the
  older HICN, told apart by shape).
* a US driver's licence (CX-5 ``DL``) whose authority is a state code
  (``NY``) gets that state's DMV OID ``urn:oid:2.16.840.1.113883.4.3.<FIPS>``.
* values in known systems are written one way (``987-65-4320`` and
  ``987654320`` are one SSN; FHIR's registry represents SSN, MBI and HICN
  without dashes or spaces).
* a value in ``placeholders`` (compared case-insensitively, with and
  without dashes and spaces) or matching ``placeholder_patterns`` is never
  recorded as an identifier: the helpers leave it out and flag it, and a
  patient left without a linkable identifier gets one that links nothing
  (``UNLINKED_SYSTEM``, the event's own id as value).

Medicaid numbers are issued by each state under the state's own OID; there is
no national system to canonicalise to, so none is assumed: add the states a
site receives with :meth:`IdentifierPolicy.with_systems`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "DEFAULT_SYSTEMS",
    "DEFAULT_TYPE_SYSTEMS",
    "STATE_DL_OIDS",
    "UNLINKED_SYSTEM",
    "US_DL_ROOT",
    "US_MBI",
    "US_MEDICARE_HICN",
    "US_NPI",
    "US_SSN",
    "IdentifierPolicy",
]

US_SSN = "http://hl7.org/fhir/sid/us-ssn"
US_NPI = "http://hl7.org/fhir/sid/us-npi"
US_MBI = "http://hl7.org/fhir/sid/us-mbi"
US_MEDICARE_HICN = "http://hl7.org/fhir/sid/us-medicare"
US_DL_ROOT = "2.16.840.1.113883.4.3"  # + "." + the state's FIPS code: that state's driver's licences
# The system of a stand-in identifier that links nothing: its value is the event's own id.
UNLINKED_SYSTEM = "urn:auditsvc:unlinked"

_STATE_FIPS = {
    "AL": 1, "AK": 2, "AZ": 4, "AR": 5, "CA": 6, "CO": 8, "CT": 9, "DE": 10, "DC": 11, "FL": 12, "GA": 13,
    "HI": 15, "ID": 16, "IL": 17, "IN": 18, "IA": 19, "KS": 20, "KY": 21, "LA": 22, "ME": 23, "MD": 24,
    "MA": 25, "MI": 26, "MN": 27, "MS": 28, "MO": 29, "MT": 30, "NE": 31, "NV": 32, "NH": 33, "NJ": 34,
    "NM": 35, "NY": 36, "NC": 37, "ND": 38, "OH": 39, "OK": 40, "OR": 41, "PA": 42, "RI": 44, "SC": 45,
    "SD": 46, "TN": 47, "TX": 48, "UT": 49, "VT": 50, "VA": 51, "WA": 53, "WV": 54, "WI": 55, "WY": 56,
    "AS": 60, "GU": 66, "MP": 69, "PR": 72, "VI": 78,
}  # fmt: skip
STATE_DL_OIDS: Mapping[str, str] = MappingProxyType(
    {state: f"urn:oid:{US_DL_ROOT}.{fips}" for state, fips in _STATE_FIPS.items()}
)


def _spellings(canonical: str, oid: str, *names: str) -> dict[str, str]:
    return {key: canonical for key in (canonical, oid, f"urn:oid:{oid}", *names)}


DEFAULT_SYSTEMS: Mapping[str, str] = MappingProxyType(
    {
        **_spellings(US_SSN, "2.16.840.1.113883.4.1", "SSN", "US-SSN", "SSA", "http://hl7.org/fhir/sid/ssn"),
        **_spellings(US_NPI, "2.16.840.1.113883.4.6", "NPI", "US-NPI", "CMS-NPI"),
        **_spellings(
            US_MBI, "2.16.840.1.113883.4.927", "MBI", "US-MBI", "http://terminology.hl7.org/NamingSystem/cmsMBI"
        ),
        **_spellings(US_MEDICARE_HICN, "2.16.840.1.113883.4.572", "HICN", "HIC", "MEDICARE"),
        # A state DMV OID written bare, or with its urn:oid: prefix, is one system.
        **{oid.removeprefix("urn:oid:"): oid for oid in STATE_DL_OIDS.values()},
        **{oid: oid for oid in STATE_DL_OIDS.values()},
    }
)
# HL7 v2 table 0203 identifier types that name a national space on their own.
DEFAULT_TYPE_SYSTEMS: Mapping[str, str] = MappingProxyType(
    {"SS": US_SSN, "SSN": US_SSN, "NPI": US_NPI, "MC": US_MBI, "MCN": US_MBI, "MBI": US_MBI, "HC": US_MEDICARE_HICN}
)
DEFAULT_PLACEHOLDERS = frozenset(
    {
        "REDACTED", "MASKED", "UNKNOWN", "UNK", "UNAVAILABLE", "NONE", "NULL", "NIL", "N/A", "NA", "NOTAVAILABLE",
        "NOT AVAILABLE", "DECLINED", "REFUSED", "TEMP", "TBD", "PENDING", "TEST", "0", "-",
        "000000000", "111111111", "123456789", "999999999", "987654321", "078051120", "219099999",
    }
)  # fmt: skip
# Values made of mask characters (XXX-XX-XXXX, ***-**-1234, #########) or one digit repeated (000-00-0000).
DEFAULT_PLACEHOLDER_PATTERNS = (r"[Xx*#•]{3,}[0-9]{0,4}", r"(\d)\1{4,}")

_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_SEPARATORS = re.compile(r"[\s\-]+")
# MBI: 11 characters, digit first, letters without S L O I B Z (CMS format); the HICN is an SSN and a suffix.
_MBI = re.compile(
    r"[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9][0-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9][0-9][AC-HJKMNP-RT-Y]{2}[0-9]{2}"
)
_COMPACT_SYSTEMS = frozenset({US_SSN, US_MBI, US_MEDICARE_HICN, US_NPI})


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({k.strip().upper(): v for k, v in mapping.items()})


@dataclass(frozen=True)
class IdentifierPolicy:
    """How the helpers write identifier systems and values, and which values never link.

    The default (``IdentifierPolicy()``) knows the US SSN, NPI, Medicare
    (MBI and HICN) and state driver's licence systems and the common
    placeholders. Build a site's policy from it::

        policy = IdentifierPolicy().with_systems({"TXMEDICAID": "urn:oid:<the state's Medicaid OID>"})
        policy = policy.with_placeholders({"NOSSN"})
    """

    systems: Mapping[str, str] = field(default_factory=lambda: DEFAULT_SYSTEMS)
    type_systems: Mapping[str, str] = field(default_factory=lambda: DEFAULT_TYPE_SYSTEMS)
    placeholders: frozenset[str] = DEFAULT_PLACEHOLDERS
    placeholder_patterns: tuple[str, ...] = DEFAULT_PLACEHOLDER_PATTERNS
    normalize_values: bool = True

    def __post_init__(self) -> None:
        # Keys compared case-insensitively; stored frozen so a shared policy cannot change under a channel.
        object.__setattr__(self, "systems", _frozen(self.systems))
        object.__setattr__(self, "type_systems", _frozen(self.type_systems))
        object.__setattr__(self, "placeholders", frozenset(_placeholder_key(p) for p in self.placeholders))
        object.__setattr__(self, "_patterns", tuple(re.compile(p) for p in self.placeholder_patterns))

    def with_systems(self, systems: Mapping[str, str]) -> IdentifierPolicy:
        """A copy that also maps ``systems`` (spelling -> canonical system); later entries win."""
        return replace(self, systems={**self.systems, **systems})

    def with_placeholders(self, values: Iterable[str], *, replace_defaults: bool = False) -> IdentifierPolicy:
        """A copy with more placeholder values (or only these, with ``replace_defaults=True``)."""
        base = frozenset() if replace_defaults else self.placeholders
        return replace(self, placeholders=base | frozenset(values))

    def known_system(self, system: str) -> str | None:
        """The canonical system ``system`` is a spelling of, or None when the table does not know it."""
        key = system.strip().upper()
        found = self.systems.get(key)
        if found is None and key.startswith("URN:OID:"):
            found = self.systems.get(key.removeprefix("URN:OID:"))
        elif found is None and _OID.fullmatch(key):
            found = self.systems.get(f"URN:OID:{key}")
        return found

    def canonical_system(self, system: str) -> str:
        """The canonical spelling of an identifier system (itself when unknown)."""
        found = self.known_system(system)
        return found if found is not None else system.strip()

    def system_for_type(self, id_type: str, value: str = "") -> str | None:
        """The canonical system an HL7 v2 identifier type (CX-5) names by itself, if any."""
        system = self.type_systems.get(id_type.strip().upper())
        if system == US_MBI and value and not _MBI.fullmatch(_compact(value).upper()):
            return US_MEDICARE_HICN  # a Medicare number that is not an MBI is the older HICN
        return system

    @staticmethod
    def state_driver_licence(state: str) -> str | None:
        """``urn:oid:2.16.840.1.113883.4.3.<FIPS>`` for a US state or territory code."""
        return STATE_DL_OIDS.get(state.strip().upper())

    def normalize_value(self, system: str, value: str) -> str:
        """``value`` as written in ``system``: no dashes or spaces in SSN, MBI, HICN and NPI."""
        value = value.strip()
        if self.normalize_values and system in _COMPACT_SYSTEMS:
            compact = _compact(value)
            return compact.upper() if compact else value
        return value

    def is_placeholder(self, value: str) -> bool:
        """True when ``value`` stands for "no identifier" and must never link patients."""
        stripped = value.strip()
        if not stripped:
            return True
        if _placeholder_key(stripped) in self.placeholders or _placeholder_key(_compact(stripped)) in self.placeholders:
            return True
        patterns: tuple[re.Pattern[str], ...] = self._patterns  # type: ignore[attr-defined]
        compact = _compact(stripped)
        return any(p.fullmatch(compact) for p in patterns)

    def canonical(self, system: str, value: str) -> tuple[str, str] | None:
        """``(system, value)`` in canonical form, or None for a placeholder value."""
        if self.is_placeholder(value):
            return None
        system = self.canonical_system(system)
        return system, self.normalize_value(system, value)


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value)


def _placeholder_key(value: str) -> str:
    return value.strip().upper()


DEFAULT_POLICY = IdentifierPolicy()
