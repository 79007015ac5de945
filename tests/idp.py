"""A test identity provider: signing keys made at test time, their JWKS (as a
file or over a loopback HTTP server) and the JWTs they sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
