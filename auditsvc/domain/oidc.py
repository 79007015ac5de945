"""OIDC/JWT bearer tokens for human users: privacy officers, auditors, admins.

A user who signed in with the organisation's identity provider presents its
access (or ID) token as ``Authorization: Bearer <JWT>``. It is accepted when

1. its header names an algorithm from ``oidc_algorithms`` (asymmetric only:
   ``none`` and HS* are refused before any key is looked at),
2. its ``kid`` is a signing key in the provider's JWKS (file or URL, cached;
   an unknown ``kid`` fetches the set again, at most every
   ``oidc_jwks_min_refresh_seconds``, so key rotation needs no restart),
3. that key's type fits the algorithm (an RSA key never verifies an HMAC),
4. the signature verifies, ``iss`` and ``aud`` are the configured ones, and
   ``exp`` (required), ``nbf`` and ``iat`` hold within ``oidc_leeway_seconds``.

The roles claim (``oidc_roles_claim``, a dotted path into nested objects
when the claim is not found under its literal name) is mapped through
``oidc_role_map``. A valid token that maps to no role is an identity we know
but may not admit: 403, not 401. Emitters never come this way: they are
systems bound to source systems, and the role map cannot name ``emitter``.

The caller's ``token_id`` is ``oidc:<sub>`` (``sub`` is the provider's
staff identifier, not PHI; an unusually long or unprintable one is hashed)
and its name the ``oidc_actor_claim`` (``sub`` when absent): that is what the
audit of the user's reads records, and the rate-limit key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import Forbidden, Unauthenticated, Unavailable
from .tokens import Caller, Role

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

# Which algorithms a key may verify, by (kty, crv).
KEY_ALGORITHMS: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
}
HUMAN_ROLES = (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN)
MAX_JWKS_BYTES = 1024 * 1024
MIN_RSA_BITS = 2048
JWKS_TIMEOUT_SECONDS = 5.0
_PRINTABLE_SUB = re.compile(r"^[\x21-\x7e]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class JwksError(ValueError):
    """The JWKS document is not a usable key set."""


def key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The JWS algorithms a JWK may verify (empty for symmetric or unknown keys)."""
    kty = jwk.get("kty")
    crv = None if kty == "RSA" else jwk.get("crv")
    if not isinstance(kty, str) or not (crv is None or isinstance(crv, str)):
        return frozenset()
    return KEY_ALGORITHMS.get((kty, crv), frozenset())


@dataclass(frozen=True)
class SigningKey:
    """One published key, ready to verify each accepted algorithm it fits."""

    kid: str | None
    verifiers: dict[str, jwt.PyJWK]

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self.verifiers)


def parse_jwks(data: bytes, accepted: frozenset[str]) -> list[SigningKey]:
    """The usable signing keys of a JWKS document.

    Symmetric keys, encryption keys, keys for no accepted algorithm and RSA
    keys under 2048 bits are left out; a document without any usable key is
    an error (it would lock every user out).
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JwksError("the JWKS is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('the JWKS has no "keys" list')
    keys: list[SigningKey] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        algorithms = key_algorithms(jwk) & accepted
        declared = jwk.get("alg")
        if declared is not None:
            algorithms &= {declared}
        if not algorithms:
            continue
        try:
            verifiers = {alg: jwt.PyJWK(jwk, alg) for alg in sorted(algorithms)}
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("JWKS key %s cannot be used and is skipped", kid or "(no kid)")
            continue
        public = next(iter(verifiers.values())).key
        if isinstance(public, RSAPublicKey) and public.key_size < MIN_RSA_BITS:
            log.warning("JWKS key %s is an RSA key under %d bits and is skipped", kid or "(no kid)", MIN_RSA_BITS)
            continue
        keys.append(SigningKey(kid, verifiers))
    if not keys:
        raise JwksError("the JWKS holds no signing key for an accepted algorithm")
    return keys


@dataclass(frozen=True)
class OidcConfig:
    """The identity provider and how its tokens map to auditsvc roles
    (the ``AUDITSVC_OIDC_*`` settings)."""

    issuer: str
    audience: str
    algorithms: frozenset[str]
    roles_claim: str
    role_map: Mapping[str, Role]
    actor_claim: str
    leeway_seconds: int
    jwks_file: Path | None
    jwks_url: str | None
    jwks_cache_seconds: float
    jwks_min_refresh_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig:
        if settings.oidc_issuer is None or settings.oidc_audience is None:
            raise ValueError("OIDC is not configured")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=frozenset(settings.oidc_algorithms),
            roles_claim=settings.oidc_roles_claim,
            role_map={value: Role(role) for value, role in settings.oidc_role_map.items()},
            actor_claim=settings.oidc_actor_claim,
            leeway_seconds=settings.oidc_leeway_seconds,
            jwks_file=settings.oidc_jwks_file,
            jwks_url=settings.oidc_jwks_url,
            jwks_cache_seconds=settings.oidc_jwks_cache_seconds,
            jwks_min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
        )


def jwks_loader(config: OidcConfig) -> Callable[[], Awaitable[bytes]]:
    """Reads the configured JWKS: the file, or the URL over HTTP(S)."""
    if config.jwks_file is not None:
        path: Path = config.jwks_file

        async def _read() -> bytes:
            data = await asyncio.to_thread(path.read_bytes)
            if len(data) > MAX_JWKS_BYTES:
                raise JwksError("the JWKS file is too large")
            return data

        return _read
    url = config.jwks_url
    if url is None:
        raise ValueError("OIDC is not configured")

    async def _fetch() -> bytes:
        async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise JwksError("the JWKS document is too large")
        return response.content

    return _fetch


class JwksCache:
    """The provider's signing keys, kept for ``ttl`` seconds.

    A ``kid`` not in the set loads it again (key rotation), but not more
    often than every ``min_refresh`` seconds, so a stream of tokens with
    made-up key ids cannot turn into a stream of requests to the provider.
    When a reload fails the keys in hand stay in use.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[bytes]],
        accepted: frozenset[str],
        *,
        ttl: float,
        min_refresh: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._accepted = accepted
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._clock = clock
        self._keys: list[SigningKey] | None = None
        self._loaded_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()
        self.loads = 0
        """How many times the set was read (for tests and metrics)."""

    def _may_load(self) -> bool:
        return self._clock() - self._attempted_at >= self._min_refresh

    async def key(self, kid: str | None) -> SigningKey | None:
        """The signing key a token's ``kid`` names, or None."""
        if (self._keys is None or self._clock() - self._loaded_at >= self._ttl) and self._may_load():
            await self._reload()
        if self._keys is None:
            raise Unavailable("the identity provider's signing keys cannot be loaded; retry later")
        found = self._find(kid)
        if found is None and kid is not None and self._may_load():
            await self._reload()
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> SigningKey | None:
        keys = self._keys or []
        if kid is None:
            # A provider with a single key may leave kid out of its tokens.
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.kid == kid), None)

    async def _reload(self) -> None:
        requested = self._clock()
        async with self._lock:
            if self._attempted_at >= requested:
                return  # another request reloaded while this one waited
            self._attempted_at = self._clock()
            self.loads += 1
            try:
                keys = parse_jwks(await self._load(), self._accepted)
            except (OSError, httpx.HTTPError, JwksError) as exc:
                kept = "the keys loaded before stay in use" if self._keys else "no keys are loaded"
                log.warning("cannot load the OIDC JWKS (%s); %s", type(exc).__name__, kept)
                return
            self._keys = keys
            self._loaded_at = self._clock()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named ``path``, or reached by its dotted path (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _text_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()  # a space-separated list, as in "scope"
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _display(value: Any) -> str:
    """A claim as the actor name of a read event: text, no control characters, at most 256."""
    return _CONTROL.sub("", value).strip()[:256].strip() if isinstance(value, str) else ""


def caller_id(sub: str) -> str:
    """``oidc:<sub>``; a subject that is long or unprintable is hashed instead."""
    if _PRINTABLE_SUB.match(sub):
        return f"oidc:{sub}"
    return "oidc:sha256:" + hashlib.sha256(sub.encode("utf-8")).hexdigest()[:32]


class OidcVerifier:
    """Turns a JWT bearer value into a ``Caller``, or raises 401/403/503 errors."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._issuer = config.issuer
        self._audience = config.audience
        self._algorithms = config.algorithms
        self._roles_claim = config.roles_claim
        self._role_map = dict(config.role_map)
        self._actor_claim = config.actor_claim
        self._leeway = config.leeway_seconds
        self.keys = JwksCache(
            jwks_loader(config),
            self._algorithms,
            ttl=config.jwks_cache_seconds,
            min_refresh=config.jwks_min_refresh_seconds,
            clock=clock,
        )

    async def authenticate(self, token: str) -> Caller:
        return self._caller(await self._verified_claims(token))

    async def authenticate_id_token(self, token: str, nonce: str) -> Caller:
        """An ID token from the authorization-code sign-in (the console's):
        verified as a bearer JWT, and carrying the sign-in's ``nonce``."""
        claims = await self._verified_claims(token)
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise Unauthenticated("the ID token's nonce is not this sign-in's")
        return self._caller(claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.strip():
            raise Unauthenticated("the JWT's sub claim is empty")
        mapped = {self._role_map[v] for v in _text_values(claim_at(claims, self._roles_claim)) if v in self._role_map}
        roles = [role for role in HUMAN_ROLES if role in mapped]
        if not roles:
            raise Forbidden(f"the OIDC token is valid but its '{self._roles_claim}' claim grants no auditsvc role")
        actor = claim_at(claims, self._actor_claim)
        name = _display(actor) or _display(sub) or None
        return Caller(caller_id(sub), roles[0], (), name, tuple(roles[1:]))

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        # 1. The header: an accepted algorithm, before any key is touched.
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("malformed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            accepted = ", ".join(sorted(self._algorithms))
            raise Unauthenticated(f"the JWT's signing algorithm is not accepted (accepted: {accepted})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed JWT: kid is not a string")
        # 2. The key it names, 3. whose type fits the algorithm.
        key = await self.keys.key(kid)
        if key is None:
            raise Unauthenticated("the JWT is signed with a key the identity provider does not publish (kid)")
        verifier = key.verifiers.get(alg)
        if verifier is None:
            raise Unauthenticated("the JWT's algorithm does not fit its signing key")
        # 4. Signature and claims.
        try:
            return jwt.decode(
                token,
                key=verifier,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the JWT is not valid yet (nbf or iat is in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the JWT is not meant for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the JWT's issuer is not accepted (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the JWT lacks the required {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the JWT's signature does not verify") from None
        except (jwt.InvalidTokenError, jwt.PyJWKError):
            raise Unauthenticated("invalid JWT") from None
