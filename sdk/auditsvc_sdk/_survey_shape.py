"""Shapes of values, never values: what the survey may print about an identifier.

``value_shape("A1234567")`` is ``"A + 7 digits"``: a letter is ``A`` (any
letter, not the one sent), a run of digits is its length, ``-`` ``.`` ``/``
``:`` ``_`` and space are kept as themselves, any other character is
``symbol``. Four letters or more in a row are counted (``5 letters``), and a
UUID is ``UUID``. Only the placeholders of :data:`PLACEHOLDERS` and values
made of one repeated digit or ``123456789`` are ever printed as themselves:
they identify nobody, which is the problem with them.
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "is_placeholder", "placeholder_label", "value_shape"]

# The closed list the survey prints by value; the helpers' own table may be longer.
PLACEHOLDERS = frozenset(
    {
        "REDACTED",
        "UNKNOWN",
        "UNK",
        "NONE",
        "NULL",
        "N/A",
        "NA",
        "TEST",
        "MASKED",
        "XXX",
        "XXXXXXXXX",
        "XXX-XX-XXXX",
        "123456789",
        "123-45-6789",
        "999-99-9999",
        "000-00-0000",
    }
)
_TOKEN = re.compile(r"\d+|[A-Za-z]+|.", re.DOTALL)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_REPEATED_DIGIT = re.compile(r"(\d)\1{5,}")
_KEPT = {"-": "-", ".": ".", "/": "/", ":": ":", "_": "_", " ": "space"}
_MAX_TOKENS = 9


def is_placeholder(value: str) -> bool:
    """A value that stands for "no identifier" (closed list, or one digit repeated six times or more)."""
    v = value.strip().upper()
    return v in PLACEHOLDERS or bool(_REPEATED_DIGIT.fullmatch(v))


def value_shape(value: str) -> str:
    """The shape of an identifier value: character classes and lengths, no character of it."""
    if _UUID.fullmatch(value):
        return "UUID"
    parts: list[str] = []
    for token in _TOKEN.findall(value):
        if token.isdigit():
            parts.append(f"{len(token)} digit" + ("s" if len(token) > 1 else ""))
        elif token.isascii() and token.isalpha():
            parts.append("A" * len(token) if len(token) <= 3 else f"{len(token)} letters")
        else:
            parts.append(_KEPT.get(token, "symbol"))
    if len(parts) > _MAX_TOKENS:
        return f"{len(value)} characters, mixed"
    return " + ".join(parts) if parts else "empty"


def placeholder_label(value: str, known: frozenset[str] = frozenset()) -> str:
    """How a placeholder value is printed: itself when it is a known word or digit run, else its shape.

    A masked value (``XXX-XX-1234``) keeps real digits: only its shape is printed.
    """
    v = value.strip().upper()
    if v in PLACEHOLDERS or v in known or _REPEATED_DIGIT.fullmatch(v) or not any(c.isdigit() for c in v):
        return v if len(v) <= 24 else f"masked: {value_shape(value)}"
    return f"masked: {value_shape(value)}"
