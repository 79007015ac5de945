"""The operations guide's configuration reference names every setting."""

from __future__ import annotations

import re

from auditsvc.settings import Settings

from .conftest import REPO


def _reference() -> str:
    guide = (REPO / "docs" / "operations.md").read_text()
    start = guide.index("## 4. Configuration reference")
    return guide[start : guide.index("\n## 5.", start)]


def test_every_setting_is_in_the_configuration_reference() -> None:
    reference = _reference()
    # A row may name several variables: `AUDITSVC_A`, `…_B` or `AUDITSVC_A_B`, `AUDITSVC_A_C`.
    named = set(re.findall(r"`(AUDITSVC_[A-Z0-9_]+)`", reference))
    for prefix, suffix in re.findall(r"`(AUDITSVC_[A-Z0-9_]+?)_[A-Z0-9]+`, `…(_[A-Z0-9_]+)`", reference):
        named.add(prefix + suffix)
    for row in re.findall(r"^\|[^|]*\|", reference, flags=re.M):
        first = re.findall(r"`(AUDITSVC_[A-Z0-9_]+)`", row)
        for short in re.findall(r"`…(_[A-Z0-9_]+)`", row):
            if first:
                stem = first[0].rsplit("_", 1)[0]
                named.add(stem + short)
                named.add(stem.rsplit("_", 1)[0] + short)
    missing = sorted(
        f"AUDITSVC_{name.upper()}" for name in Settings.model_fields if f"AUDITSVC_{name.upper()}" not in named
    )
    assert missing == []
