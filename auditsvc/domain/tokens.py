"""API credentials: bearer tokens with one role, stored only as keyed hashes.

A token reads ``asv_<token id>_<secret>``. The id is public (it is the
``emitter`` recorded with every event the token sends and is how tokens are
listed and revoked); the secret is 256 random bits, of which the database
keeps only an HMAC under the server's token key, compared in constant time.
A token may carry an expiry; revocation and expiry are checked against the
database on every request, so both take effect at once.

Human users may present an OIDC/JWT bearer token instead (``oidc.py``); a
bearer value shaped like a JWT (three dot-separated base64url parts) is
never an API token, and the other way round.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ..keys import ServerKeys
from .errors import InvalidInput, Unauthenticated
from .reserved import is_reserved_system

_TOKEN = re.compile(r"^asv_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# A JWS compact serialisation; the signature may be empty (``alg: none``),
# which the OIDC verifier then refuses with a clear reason.
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class Role(StrEnum):
    EMITTER = "emitter"
    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request.

    ``token_id`` identifies the credential: an API token's id, or
    ``oidc:<subject>`` for an OIDC user. It is the rate-limit key and the
    actor recorded when the caller reads the log. ``role`` is the role the
    caller acts in; an OIDC user may hold ``other_roles`` as well, and the
    endpoint's role check picks the one it admits.
    """

    token_id: str
    role: Role
    systems: tuple[str, ...]
    name: str | None
    other_roles: tuple[Role, ...] = ()

    @property
    def roles(self) -> tuple[Role, ...]:
        return (self.role, *self.other_roles)


@dataclass(frozen=True)
class NewToken:
    token_id: str
    token: str
    secret_hmac: bytes


@dataclass(frozen=True)
class StoredToken:
    token_id: str
    secret_hmac: bytes
    role: str
    systems: tuple[str, ...]
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def new_token(keys: ServerKeys, role: Role, systems: list[str]) -> NewToken:
    if role is Role.EMITTER and not systems:
        raise InvalidInput("an emitter token must be bound to at least one source system (--system)")
    if role is not Role.EMITTER and systems:
        raise InvalidInput("only emitter tokens are bound to source systems")
    reserved = [s for s in systems if is_reserved_system(s)]
    if reserved:
        raise InvalidInput(
            f"'{reserved[0]}' is reserved for the service's own events; an emitter cannot be bound to it"
        )
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"asv_{token_id}_{secret}", keys.token_hmac(secret))


def bearer_value(header: str | None) -> str:
    """The credential of an ``Authorization: Bearer <credential>`` header value."""
    if not header:
        raise Unauthenticated("missing bearer token")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return value


def looks_like_jwt(value: str) -> bool:
    """Whether a bearer value is shaped like a JWT (header.payload.signature)."""
    return _JWT.match(value) is not None


def parse_api_token(value: str) -> tuple[str, str]:
    """(token id, secret) of an ``asv_<id>_<secret>`` bearer value."""
    match = _TOKEN.match(value)
    if match is None:
        raise Unauthenticated("malformed bearer token")
    return match.group(1), match.group(2)


def parse_bearer(header: str | None) -> tuple[str, str]:
    """(token id, secret) from an ``Authorization`` header value."""
    return parse_api_token(bearer_value(header))


def authenticate(stored: StoredToken | None, secret: str, keys: ServerKeys, now: datetime) -> Caller:
    # Compare against a dummy when the id is unknown, so timing does not tell
    # an unknown id from a wrong secret.
    expected = stored.secret_hmac if stored is not None else b"\x00" * 32
    valid = hmac.compare_digest(expected, keys.token_hmac(secret))
    if stored is None or not valid:
        raise Unauthenticated("invalid bearer token")
    if stored.revoked_at is not None:
        raise Unauthenticated("bearer token has been revoked")
    if stored.expires_at is not None and stored.expires_at <= now:
        raise Unauthenticated("bearer token has expired")
    return Caller(stored.token_id, Role(stored.role), stored.systems, stored.name)
