"""ITI-81 search parameters, parsed into a typed query.

FHIR search syntax as the facade serves it (docs/fhir.md):

* ``date`` and ``_lastUpdated``: ``[prefix]value``, prefix ``eq`` (default),
  ``ge``, ``gt``, ``le``, ``lt``, ``sa``, ``eb``; a value is a partial date
  (``2026``, ``2026-11``, ``2026-11-24``) or a dateTime to minute, second or
  fraction, with its offset (UTC if none), and stands for the range its
  precision implies. Repeated, all must hold (a range is ``ge..&le..``).
  ``date`` is required.
* tokens: ``system|value``, ``|value`` (no system), ``value`` (any system),
  ``,`` for OR (``\\,`` is a comma in a value), modifier ``:not`` on the
  codes (``type``, ``subtype``, ``outcome``, ``entity-type``, ``entity-role``).
* ``address`` (string): a case-insensitive prefix of a system id;
  ``:exact`` for the id itself.
* ``patient``: ``Patient/<id>``, the id being a value of the patient
  identifier system configured by AUDITSVC_FHIR_PATIENT_SYSTEM (400
  ``not-supported`` when none is).
* ``_count``: 1..1000 (larger is served as 1000), default 100.

Errors are ``FhirError`` 400 naming the parameter, never quoting its value
(a patient identifier is PHI).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ..periods import MAX_TIME, MIN_TIME
from .outcome import FhirError, invalid_parameter

DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_VALUES = 20
"""OR'ed values in one parameter, and repetitions of one parameter."""

CODE_PARAMETERS = ("type", "subtype", "outcome", "entity-type", "entity-role")
IDENTIFIER_PARAMETERS = ("patient.identifier", "entity.identifier", "agent.identifier", "source.identifier")
DATE_PARAMETERS = ("date", "_lastUpdated")
KNOWN = frozenset(
    {*CODE_PARAMETERS, *IDENTIFIER_PARAMETERS, *DATE_PARAMETERS, "patient", "address", "_id", "_count", "_format"}
)
PHI_PARAMETERS = frozenset({"patient", "patient.identifier", "entity.identifier"})
"""Parameters whose values are patient identifiers: sealed wherever the query is kept."""


@dataclass(frozen=True, slots=True)
class Token:
    """One token value: ``system`` None for any system, "" for none."""

    system: str | None
    value: str

    def matches(self, system: str, value: str) -> bool:
        return self.value == value and (self.system is None or self.system == system)


@dataclass(frozen=True, slots=True)
class TokenCondition:
    """One parameter occurrence: any of ``tokens`` (negated by ``:not``)."""

    tokens: tuple[Token, ...]
    negated: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: every condition must hold."""

    start: datetime  # occurred_at >= start
    end: datetime  # occurred_at < end
    updated: tuple[datetime, datetime] | None = None  # received_at in [from, to)
    patients: tuple[tuple[Token, ...], ...] = ()  # each: any of these identifiers (linked ones too)
    agents: tuple[tuple[Token, ...], ...] = ()
    sources: tuple[tuple[Token, ...], ...] = ()
    addresses: tuple[tuple[tuple[str, bool], ...], ...] = ()  # each: any (text, exact)
    codes: dict[str, tuple[TokenCondition, ...]] = field(default_factory=dict)
    ids: tuple[frozenset[UUID], ...] = ()
    count: int = DEFAULT_COUNT


_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ge", "gt", "le", "lt", "sa", "eb", "ne", "ap")


def date_range(name: str, text: str) -> tuple[datetime, datetime]:
    """The [low, high) range a FHIR date value stands for, by its precision."""
    m = _DATE.match(text)
    if m is None:
        raise invalid_parameter(name, "not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm...)")
    try:
        year = int(m["y"])
        if m["m"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            return low, low.replace(year=year + 1) if year < 9999 else MAX_TIME
        month = int(m["m"])
        if m["d"] is None:
            low = datetime(year, month, 1, tzinfo=UTC)
            high = low.replace(year=year + 1, month=1) if month == 12 else low.replace(month=month + 1)
            return low, high
        day = datetime(year, month, int(m["d"]), tzinfo=UTC)
        if m["H"] is None:
            return day, day + timedelta(days=1)
        offset = timedelta(0)
        if m["tz"] and m["tz"] != "Z":
            sign = 1 if m["tz"][0] == "+" else -1
            offset = sign * timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][4:6]))
        moment = day.replace(hour=int(m["H"]), minute=int(m["M"])) - offset
        if m["S"] is None:
            return moment, moment + timedelta(minutes=1)
        moment += timedelta(seconds=int(m["S"]))
        if m["f"] is None:
            return moment, moment + timedelta(seconds=1)
        digits = m["f"][:6]
        step = timedelta(microseconds=10 ** (6 - len(digits)))
        moment += timedelta(microseconds=int(digits) * 10 ** (6 - len(digits)))
        return moment, moment + step
    except (ValueError, OverflowError):
        raise invalid_parameter(name, "not a valid calendar date or time") from None


def _date_condition(name: str, text: str, modifier: str | None) -> tuple[datetime, datetime]:
    """The [from, to) a ``date`` occurrence restricts the target instant to."""
    if modifier is not None:
        raise invalid_parameter(name, f"modifier :{modifier} is not supported on a date", "not-supported")
    if "," in text:
        raise invalid_parameter(name, "OR (,) is not supported on a date; repeat the parameter for a range")
    prefix = text[:2] if text[:2] in _PREFIXES else "eq"
    value = text[2:] if text[:2] in _PREFIXES else text
    if prefix in ("ne", "ap"):
        raise invalid_parameter(name, f"prefix {prefix} is not supported (eq, ge, gt, le, lt, sa, eb)", "not-supported")
    low, high = date_range(name, value)
    if prefix == "eq":
        return low, high
    if prefix in ("ge",):
        return low, MAX_TIME
    if prefix in ("gt", "sa"):
        return high, MAX_TIME
    if prefix in ("lt", "eb"):
        return MIN_TIME, low
    return MIN_TIME, high  # le


_BAR = re.compile(r"(?<!\\)\|")


def _split_or(text: str) -> list[str]:
    """Values separated by unescaped commas (``\\,`` is a comma, ``\\|`` a bar, ``\\\\`` a backslash)."""
    return [part for part in re.split(r"(?<!\\),", text)]


def escape(text: str) -> str:
    """A value as a search parameter carries it (``\\``, ``\\,``, ``\\|``, ``\\$`` escaped)."""
    return re.sub(r"([,|$\\])", r"\\\1", text)


def _unescape(text: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", text)


def _tokens(name: str, text: str) -> tuple[Token, ...]:
    parts = _split_or(text)
    if len(parts) > MAX_VALUES:
        raise invalid_parameter(name, f"at most {MAX_VALUES} values may be OR'ed")
    tokens = []
    for part in parts:
        bar = _BAR.search(part)
        system, value = (part[: bar.start()], part[bar.end() :]) if bar else (None, part)
        if bar and _BAR.search(value):
            raise invalid_parameter(name, "a token has at most one unescaped | (system|value)")
        value = _unescape(value)
        if not value:
            raise invalid_parameter(name, "a token needs a value (system|value, |value or value)")
        tokens.append(Token(None if system is None else _unescape(system), value))
    return tuple(tokens)


def _identifier_tokens(name: str, text: str, modifier: str | None) -> tuple[Token, ...]:
    if modifier is not None:
        raise invalid_parameter(name, f"modifier :{modifier} is not supported here", "not-supported")
    tokens = _tokens(name, text)
    if name in ("patient.identifier", "entity.identifier") and any(t.system is None for t in tokens):
        # Identifiers are found by a keyed hash of (system, value): there is no lookup by value alone.
        raise invalid_parameter(name, "a patient identifier needs its system (system|value)", "not-supported")
    return tokens


def _patient_tokens(text: str, modifier: str | None, patient_system: str | None) -> tuple[Token, ...]:
    name = "patient"
    if modifier is not None:
        raise invalid_parameter(name, f"modifier :{modifier} is not supported here", "not-supported")
    if patient_system is None:
        raise invalid_parameter(
            name,
            "no FHIR Patient id system is configured (AUDITSVC_FHIR_PATIENT_SYSTEM); use patient.identifier",
            "not-supported",
        )
    tokens = []
    for part in _split_or(text):
        ref = _unescape(part)
        logical = ref.removeprefix("Patient/")
        if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", logical) or ("/" in ref and not ref.startswith("Patient/")):
            raise invalid_parameter(name, "must be Patient/<id> or <id> (a FHIR logical id)")
        tokens.append(Token(patient_system, logical))
    return tuple(tokens)


def _ids(text: str, modifier: str | None) -> frozenset[UUID]:
    if modifier is not None:
        raise invalid_parameter("_id", f"modifier :{modifier} is not supported here", "not-supported")
    try:
        return frozenset(UUID(_unescape(part)) for part in _split_or(text))
    except ValueError:
        raise invalid_parameter("_id", "an AuditEvent id here is an event_id (a UUID)") from None


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise invalid_parameter("_count", "must be a positive integer")
    return min(int(text), MAX_COUNT)


def _intersect(name: str, ranges: list[tuple[datetime, datetime]]) -> tuple[datetime, datetime]:
    low = max(r[0] for r in ranges)
    high = min(r[1] for r in ranges)
    return (low, high) if low < high else (low, low)


def parse_search(params: Sequence[tuple[str, str]], *, patient_system: str | None = None) -> SearchQuery:
    """A search from its (name, value) pairs, in order, as sent."""
    dates: list[tuple[datetime, datetime]] = []
    updated: list[tuple[datetime, datetime]] = []
    patients: list[tuple[Token, ...]] = []
    agents: list[tuple[Token, ...]] = []
    sources: list[tuple[Token, ...]] = []
    addresses: list[tuple[tuple[str, bool], ...]] = []
    codes: dict[str, list[TokenCondition]] = {}
    ids: list[frozenset[UUID]] = []
    count = DEFAULT_COUNT
    seen: dict[str, int] = {}
    for raw_name, value in params:
        name, _, modifier_text = raw_name.partition(":")
        modifier = modifier_text or None
        if name not in KNOWN:
            raise FhirError(400, "not-supported", f"unknown search parameter {name}", [name])
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > MAX_VALUES:
            raise invalid_parameter(name, f"repeated more than {MAX_VALUES} times")
        if name != "_format" and not value:
            raise invalid_parameter(name, "has no value")
        if name == "date":
            dates.append(_date_condition(name, value, modifier))
        elif name == "_lastUpdated":
            updated.append(_date_condition(name, value, modifier))
        elif name in ("patient.identifier", "entity.identifier"):
            patients.append(_identifier_tokens(name, value, modifier))
        elif name == "patient":
            patients.append(_patient_tokens(value, modifier, patient_system))
        elif name == "agent.identifier":
            agents.append(_identifier_tokens(name, value, modifier))
        elif name == "source.identifier":
            sources.append(_identifier_tokens(name, value, modifier))
        elif name == "address":
            if modifier not in (None, "exact"):
                raise invalid_parameter(name, f"modifier :{modifier} is not supported (:exact is)", "not-supported")
            addresses.append(tuple((_unescape(v), modifier == "exact") for v in _split_or(value)))
        elif name in CODE_PARAMETERS:
            if modifier not in (None, "not"):
                raise invalid_parameter(name, f"modifier :{modifier} is not supported (:not is)", "not-supported")
            codes.setdefault(name, []).append(TokenCondition(_tokens(name, value), negated=modifier == "not"))
        elif name == "_id":
            ids.append(_ids(value, modifier))
        elif name == "_count":
            if seen[name] > 1:
                raise invalid_parameter(name, "given more than once")
            count = _count(value)
    if not dates:
        raise FhirError(400, "required", "search parameter date is required (ITI-81): e.g. date=ge2026-11-01", ["date"])
    start, end = _intersect("date", dates)
    return SearchQuery(
        start=start,
        end=end,
        updated=_intersect("_lastUpdated", updated) if updated else None,
        patients=tuple(patients),
        agents=tuple(agents),
        sources=tuple(sources),
        addresses=tuple(addresses),
        codes={k: tuple(v) for k, v in codes.items()},
        ids=tuple(ids),
        count=count,
    )
