"""The ``searchset`` Bundle a search page answers with (and the CLI writes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from auditsvc_sdk.chain import format_timestamp


def page_url(base: str, token: str) -> str:
    """A page's link: the search base and its sealed ``_page`` token, nothing else."""
    return f"{base}/AuditEvent?{urlencode({'_page': token})}"


def searchset(
    base: str | None, resources: Sequence[dict[str, Any]], *, self_url: str | None, next_url: str | None
) -> dict[str, Any]:
    """A searchset Bundle of ``resources`` (all matches: ``search.mode``
    ``match``); with no ``base`` (written offline) each ``fullUrl`` is the
    event's ``urn:uuid``."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": format_timestamp(datetime.now(UTC)),
    }
    links = []
    if self_url is not None:
        links.append({"relation": "self", "url": self_url})
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    if links:
        bundle["link"] = links
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/AuditEvent/{r['id']}" if base else f"urn:uuid:{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return bundle
