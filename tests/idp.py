"""A test identity provider: signing keys made at test time, their JWKS (as a
file or over a loopback HTTP server) and the JWTs they sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.hospital.example/realms/staff"
AUDIENCE = "auditsvc"
SUBJECT = "staff-0042"
USERNAME = "j.okafor"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class Key:
    """One of the provider's signing keys."""

    kid: str
    alg: str
    private: PrivateKey = field(repr=False)

    @classmethod
    def rsa(cls, kid: str = "rsa-1", bits: int = 2048) -> Key:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def ec(cls, kid: str = "ec-1") -> Key:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def ed25519(cls, kid: str = "ed-1") -> Key:
        return cls(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A JWT of ``claims``; ``header`` adds to or (with None) removes from its header."""
        fields = {k: v for k, v in {"kid": self.kid, **header}.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=fields)


def jwks(*keys: Key) -> bytes:
    return json.dumps({"keys": [k.jwk() for k in keys]}).encode()


def claims(roles: Any = ("auditor",), **overrides: Any) -> dict[str, Any]:
    """Valid claims for a user holding ``roles`` (None: no roles claim)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "preferred_username": USERNAME,
        "iat": now,
        "exp": now + 300,
    }
    if roles is not None:
        body["roles"] = list(roles)
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims_: dict[str, Any]) -> str:
    """``alg: none``: a header, the claims, an empty signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims_).encode())}."


def hmac_with_public_key(key: Key, claims_: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HS256 keyed with the RSA public key's PEM."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims_).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def write_jwks(path: Path, *keys: Key) -> Path:
    path.write_bytes(jwks(*keys))
    return path


class JwksServer:
    """A loopback HTTP server answering GET with the current JWKS, counting requests."""

    def __init__(self, *keys: Key) -> None:
        self.document = jwks(*keys)
        self.requests = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.document)))
                self.end_headers()
                self.wfile.write(outer.document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/protocol/openid-connect/certs"

    def publish(self, *keys: Key) -> None:
        self.document = jwks(*keys)

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


class OidcProvider:
    """A loopback OpenID provider for the authorization-code flow with PKCE:
    ``/.well-known/openid-configuration``, ``/authorize`` (signs the
    configured ``user`` in at once: no login form, and redirects back with a
    code), ``/token`` (checks the code, redirect URI, client and the PKCE
    verifier against the challenge, then issues an ID token with the nonce)
    and ``/certs`` (the JWKS). ``tokens_issued`` and ``refusals`` count
    what happened; ``user`` holds the claims of whoever signs in next."""

    def __init__(self, key: Key, client_id: str = AUDIENCE, client_secret: str | None = None) -> None:
        self.key = key
        self.client_id = client_id
        self.client_secret = client_secret
        self.user: dict[str, Any] = {"sub": SUBJECT, "preferred_username": USERNAME, "roles": ["privacy_officer"]}
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens_issued = 0
        self.refusals: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any] | None = None, location: str | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/.well-known/openid-configuration":
                    self._answer(200, outer.discovery())
                elif path == "/certs":
                    self._answer(200, json.loads(jwks(outer.key)))
                elif path == "/authorize":
                    params = {k: v[-1] for k, v in parse_qs(query).items()}
                    self._answer(302, location=outer.authorize(params))
                else:
                    self._answer(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = outer.token(form) if self.path == "/token" else (404, {})
                self._answer(status, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/certs",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, params: dict[str, str]) -> str:
        redirect = params.get("redirect_uri", "")
        if (
            params.get("client_id") != self.client_id
            or params.get("response_type") != "code"
            or params.get("code_challenge_method") != "S256"
            or "openid" not in params.get("scope", "").split()
        ):
            self.refusals.append("authorize")
            return f"{redirect}?error=invalid_request&state={params.get('state', '')}"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": redirect,
            "challenge": params.get("code_challenge", ""),
            "nonce": params.get("nonce", ""),
        }
        return f"{redirect}?code={code}&state={params.get('state', '')}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)  # a code is good once
        verifier = form.get("code_verifier", "")
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != self.client_id
            or form.get("redirect_uri") != grant["redirect_uri"]
            or not hmac.compare_digest(challenge, grant["challenge"])
            or (self.client_secret is not None and form.get("client_secret") != self.client_secret)
        ):
            self.refusals.append("token")
            return 400, {"error": "invalid_grant"}
        self.tokens_issued += 1
        id_token = self.key.sign({**claims(roles=None), **self.user, "nonce": grant["nonce"]})
        return 200, {"id_token": id_token, "access_token": "opaque", "token_type": "Bearer", "expires_in": 300}

    @contextmanager
    def running(self) -> Iterator[OidcProvider]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)
