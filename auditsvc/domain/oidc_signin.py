"""Signing in to the console through the organisation's OIDC provider:
the authorization-code flow with PKCE (RFC 7636, S256), ``state`` and
``nonce``.

1. ``PendingSignIn.new()``: fresh ``state``, ``nonce`` and PKCE verifier,
   kept by the browser in a short-lived HttpOnly cookie (api/console/auth.py);
2. ``authorization_url``: the provider's authorization endpoint (from its
   discovery document) with the client id, redirect URI, ``openid`` scope,
   state, nonce and the verifier's S256 challenge;
3. on the way back, the caller checks ``state`` against the cookie, and
   ``caller`` trades the code (with the verifier, and the client secret when
   configured) at the token endpoint for an ID token, which is verified as
   every OIDC bearer token is (domain/oidc.py: signature, algorithm, iss,
   aud = the client id, exp) and must carry the sign-in's nonce; its roles
   claim maps to auditsvc roles the same way.

The provider's answers are bounded and never logged (an error names what
failed, not what the provider sent).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from ..settings import Settings
from .errors import Unauthenticated, Unavailable
from .oidc import OidcVerifier
from .tokens import Caller

TIMEOUT_SECONDS = 10.0
DISCOVERY_TTL_SECONDS = 3600.0
MAX_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class SignInConfig:
    discovery_url: str
    client_id: str
    client_secret: str | None
    scope: str = "openid profile"

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInConfig:
        if settings.oidc_issuer is None or settings.oidc_audience is None:
            raise ValueError("OIDC is not configured")
        discovery = settings.oidc_discovery_url or (
            settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        return cls(discovery, settings.oidc_audience, secret)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class PendingSignIn:
    """One sign-in under way: what the browser keeps until the provider sends it back."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> PendingSignIn:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        """The PKCE S256 challenge of the verifier."""
        return _b64url(hashlib.sha256(self.verifier.encode()).digest())

    def cookie(self) -> str:
        return ".".join((self.state, self.nonce, self.verifier))

    @classmethod
    def from_cookie(cls, value: str) -> PendingSignIn | None:
        parts = value.split(".")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


class OidcSignIn:
    """The provider's endpoints (discovered, cached) and the code exchange."""

    def __init__(
        self, config: SignInConfig, verifier: OidcVerifier, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.verifier = verifier
        self._clock = clock
        self._endpoints: tuple[str, str] | None = None
        self._fetched = 0.0

    async def _discover(self) -> tuple[str, str]:
        if self._endpoints is not None and self._clock() - self._fetched < DISCOVERY_TTL_SECONDS:
            return self._endpoints
        document = await self._json("GET", self.config.discovery_url, "discovery document")
        authorize, token = document.get("authorization_endpoint"), document.get("token_endpoint")
        if not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in (authorize, token)):
            raise Unavailable("the identity provider's discovery document names no authorization or token endpoint")
        self._endpoints = (str(authorize), str(token))
        self._fetched = self._clock()
        return self._endpoints

    async def authorization_origin(self) -> str:
        """The origin (scheme://host[:port]) of the provider's authorization endpoint."""
        authorize, _ = await self._discover()
        parts = urlsplit(authorize)
        return f"{parts.scheme}://{parts.netloc}"

    async def authorization_url(self, pending: PendingSignIn, redirect_uri: str) -> str:
        authorize, _ = await self._discover()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scope,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pending.challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{authorize}{'&' if '?' in authorize else '?'}{query}"

    async def caller(self, code: str, pending: PendingSignIn, redirect_uri: str) -> Caller:
        """Trade the code for an ID token and verify it; the caller it names."""
        _, token_endpoint = await self._discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": pending.verifier,
        }
        if self.config.client_secret:
            form["client_secret"] = self.config.client_secret
        answer = await self._json("POST", token_endpoint, "token endpoint", data=form)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the identity provider did not issue an ID token")
        return await self.verifier.authenticate_id_token(id_token, pending.nonce)

    async def _json(self, method: str, url: str, what: str, **kw: Any) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
                response = await client.request(method, url, headers={"Accept": "application/json"}, **kw)
        except httpx.HTTPError:
            raise Unavailable(f"the identity provider's {what} could not be reached") from None
        if response.status_code in (400, 401) and what == "token endpoint":
            raise Unauthenticated(
                "the identity provider refused the sign-in code (expired, reused or not this sign-in's)"
            )
        if response.status_code != 200 or len(response.content) > MAX_ANSWER_BYTES:
            raise Unavailable(f"the identity provider's {what} answered {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise Unavailable(f"the identity provider's {what} did not answer JSON") from None
        if not isinstance(document, dict):
            raise Unavailable(f"the identity provider's {what} did not answer a JSON object")
        return document
