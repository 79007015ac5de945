"""The pre-go-live survey of a site's traffic, as a public surface.

``survey(paths, ...)`` reads files and directories (HL7 v2 files and
batches, MLLP captures, Mirth and other engines' XML message exports, FHIR
JSON, Bundles and NDJSON), runs the SDK's helpers on every message as a
channel would, and returns the report as a JSON-ready dict
(``format: auditsvc-survey/1``): message types and versions, segments and
Z-segments, how often each field the helpers read is filled, identifier
systems and value *shapes* per assigning authority, the share of inputs
that yield events, refusals and assumptions by cause, and the helper
settings recommended for the site. It runs locally, sends nothing, and the
report holds counts, codes, system names and shapes, never a value.
``render_terminal`` and ``render_html`` present that dict; ``read_paths``
yields what the survey reads (an :class:`Item` per message or document,
an :class:`Unreadable` with a cause code for the rest). The command line is
``auditsvc-sdk survey PATH...``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._survey import FORMAT, Survey
from ._survey_read import Item, Unreadable, read_paths
from ._survey_render import render_html, render_terminal
from ._survey_settings import SurveySettings

__all__ = [
    "FORMAT",
    "Item",
    "Survey",
    "SurveySettings",
    "Unreadable",
    "read_paths",
    "render_html",
    "render_terminal",
    "survey",
]


def survey(
    paths: Iterable[str | os.PathLike[str]],
    *,
    default_tz: str | None = None,
    default_authority: str | None = None,
    source: str | None = None,
    fhir_base: str | None = None,
    placeholders: Iterable[str] = (),
    systems: Mapping[str, str] | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Survey every file under ``paths`` with the helpers set as given; ``progress`` is called per item read.

    ``default_tz`` (an IANA zone name), ``default_authority``, ``source`` and
    ``fhir_base`` are passed to the helpers as a channel would;
    ``placeholders`` and ``systems`` (spelling -> canonical system) extend
    their default :class:`~auditsvc_sdk.helpers.IdentifierPolicy`.
    """
    settings = SurveySettings(
        default_tz=default_tz,
        default_authority=default_authority,
        source=source,
        fhir_base=fhir_base,
        placeholders=frozenset(placeholders),
        systems=dict(systems or {}),
    )
    run = Survey(settings)
    run.add_all(read_paths(paths), progress)
    return run.report()
