"""The helper settings a survey runs with (what a channel would pass)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .helpers import IdentifierPolicy

__all__ = ["SurveySettings"]


@dataclass(frozen=True)
class SurveySettings:
    """The helpers' settings for the run.

    ``default_tz`` is an IANA zone name; ``default_authority`` the assigning
    authority of identifiers without CX-4; ``source`` the source system id;
    ``fhir_base`` the FHIR server's base URL; ``placeholders`` and
    ``systems`` (spelling -> canonical system) extend the helpers' default
    :class:`IdentifierPolicy`.
    """

    default_tz: str | None = None
    default_authority: str | None = None
    source: str | None = None
    fhir_base: str | None = None
    placeholders: frozenset[str] = frozenset()
    systems: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default_tz is not None:
            try:
                ZoneInfo(self.default_tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"default_tz: {self.default_tz!r} is not an IANA time zone name") from None

    def tzinfo(self) -> tzinfo | None:
        return ZoneInfo(self.default_tz) if self.default_tz else None

    @cached_property
    def _policy(self) -> IdentifierPolicy:
        return IdentifierPolicy().with_systems(dict(self.systems)).with_placeholders(self.placeholders)

    def policy(self) -> IdentifierPolicy:
        return self._policy

    def as_dict(self) -> dict[str, object]:
        return {
            "default_tz": self.default_tz,
            "default_authority": self.default_authority,
            "source": self.source,
            "fhir_base": self.fhir_base,
            "placeholders": sorted(self.placeholders),
            "systems": dict(self.systems),
        }
