"""The helper settings a survey runs with (what a channel would pass)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["SurveySettings"]


@dataclass(frozen=True)
class SurveySettings:
    """``default_tz`` is an IANA zone name; ``source`` a system id; ``fhir_base`` a server base URL."""

    default_tz: str | None = None
    source: str | None = None
    fhir_base: str | None = None

    def __post_init__(self) -> None:
        if self.default_tz is not None:
            try:
                ZoneInfo(self.default_tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"default_tz: {self.default_tz!r} is not an IANA time zone name") from None

    def tzinfo(self) -> tzinfo | None:
        return ZoneInfo(self.default_tz) if self.default_tz else None
