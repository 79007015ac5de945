"""TLS on the API listener itself, and client certificates for emitters (mTLS).

ATNA-style integration authenticates the *node* that sends audit records by
a client certificate from the organisation's CA; people authenticate with
bearer tokens. uvicorn's TLS settings are per listener, so:

* ``tls_client_auth = "required"``: the handshake fails without a client
  certificate from the client CA (every caller, people included);
* ``"emitters"`` (the default once a client CA is set): the handshake asks
  for a certificate and verifies any that is sent (one from another CA fails
  the handshake); ``POST /v1/events`` is then refused with 403 on a
  connection without a verified certificate, while people's requests need
  only their token. The certificate comes *in addition to* the emitter's
  bearer token, which still binds the caller to its source systems;
* ``"optional"``: asked for and verified when sent, never required;
* ``"none"``: not asked for.

uvicorn does not put the peer certificate in the ASGI scope, so ``serve``
runs uvicorn's own HTTP protocol subclassed to add the ASGI TLS extension
(``scope["extensions"]["tls"]``: ``client_cert_chain``, ``client_cert_name``,
``tls_version``, ...) for each connection, from the handshake that asyncio
completed before the protocol saw the connection. Only a certificate the
handshake verified against the client CA is reported.

Behind a proxy or ingress that terminates TLS, configure client
certificates there instead; this service then sees plain HTTP.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import Settings, get_settings

ClientAuth = Literal["none", "optional", "emitters", "required"]

# Where emitters write: the routes that take PHI access events.
EMITTER_ROUTES = frozenset({("POST", "/v1/events"), ("POST", "/fhir/AuditEvent")})

# TLS 1.2 and 1.3 only (Python's server default), forward-secret AEAD suites
# for 1.2 (1.3 suites are all AEAD and not set by this string).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def client_auth(settings: Settings) -> ClientAuth:
    """The effective client-certificate mode: ``emitters`` when a client CA
    is configured and no mode is, ``none`` without a client CA."""
    if settings.tls_client_auth is not None:
        return settings.tls_client_auth
    return "emitters" if settings.tls_client_ca_file is not None else "none"


def check_tls_settings(settings: Settings) -> None:
    """Raise ``ValueError`` naming the setting if the TLS settings do not fit together."""
    cert, key, ca, mode = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
        client_auth(settings),
    )
    if (cert is None) != (key is None):
        raise ValueError("TLS needs both AUDITSVC_TLS_CERT_FILE and AUDITSVC_TLS_KEY_FILE (--tls-cert, --tls-key)")
    if cert is None and (ca is not None or mode != "none"):
        raise ValueError(
            "client certificates (AUDITSVC_TLS_CLIENT_CA_FILE / _CLIENT_AUTH) need TLS: set the cert and key"
        )
    if mode != "none" and ca is None:
        raise ValueError(f"AUDITSVC_TLS_CLIENT_AUTH={mode} needs AUDITSVC_TLS_CLIENT_CA_FILE (--tls-client-ca)")
    for name, path in (("certificate", cert), ("key", key), ("client CA", ca)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"TLS {name} file {path} does not exist")


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``: none without TLS."""
    check_tls_settings(settings)
    if settings.tls_cert_file is None:
        return {}
    mode = client_auth(settings)
    reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "emitters": ssl.CERT_OPTIONAL}
    ca = settings.tls_client_ca_file
    return {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_key_file),
        "ssl_ca_certs": str(ca) if ca is not None and mode != "none" else None,
        "ssl_cert_reqs": reqs.get(mode, ssl.CERT_REQUIRED),
        "ssl_ciphers": CIPHERS,
        "http": http_protocol(),
    }


def export_tls_options(
    cert: Path | None, key: Path | None, client_ca: Path | None, client_auth_mode: str | None
) -> None:
    """``serve --tls-*``: into the environment (worker processes build their
    settings from it) and so into this process's settings."""
    given = {
        "AUDITSVC_TLS_CERT_FILE": cert,
        "AUDITSVC_TLS_KEY_FILE": key,
        "AUDITSVC_TLS_CLIENT_CA_FILE": client_ca,
        "AUDITSVC_TLS_CLIENT_AUTH": client_auth_mode,
    }
    for name, value in given.items():
        if value is not None:
            os.environ[name] = str(Path(value).resolve()) if isinstance(value, Path) else value
    if any(value is not None for value in given.values()):
        get_settings.cache_clear()


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, object] | None:
    """The ASGI TLS extension for one connection (None without TLS)."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    verified = ssl_object.context.verify_mode != ssl.CERT_NONE
    der = ssl_object.getpeercert(binary_form=True) if verified else None
    name = None
    if der:
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            name = None
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def has_verified_client_certificate(scope: Scope) -> bool:
    tls = scope.get("extensions", {}).get("tls")
    return bool(tls and tls.get("client_cert_chain"))


def _with_tls_extension(app: Any, extension: dict[str, object]) -> Any:
    async def tls_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"] = {**scope.get("extensions", {}), "tls": extension}
        await app(scope, receive, send)

    return tls_app


class _PeerCertificate:
    """Wrap the connection's app so each request's scope carries the TLS extension."""

    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        extension = tls_extension(transport)
        if extension is not None:
            self.app = _with_tls_extension(self.app, extension)


class H11TlsProtocol(_PeerCertificate, H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    HttpToolsTlsProtocol: type[asyncio.Protocol] | None = None
else:

    class _HttpToolsTls(_PeerCertificate, HttpToolsProtocol):
        pass

    _HttpToolsTls.__name__ = _HttpToolsTls.__qualname__ = "HttpToolsTlsProtocol"
    HttpToolsTlsProtocol = _HttpToolsTls


def http_protocol() -> type[asyncio.Protocol]:
    """What uvicorn's ``auto`` would pick, with the TLS extension added."""
    return HttpToolsTlsProtocol or H11TlsProtocol


class RequireEmitterCertificate:
    """403 for the emitter routes on a connection without a verified client certificate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and (scope.get("method"), scope.get("path")) in EMITTER_ROUTES
            and not has_verified_client_certificate(scope)
        ):
            response = JSONResponse(
                {
                    "detail": "emitters must connect with a client certificate from the configured client CA "
                    "(AUDITSVC_TLS_CLIENT_AUTH=emitters); nothing was stored"
                },
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def require_client_certificates(app: FastAPI, settings: Settings) -> None:
    """In ``emitters`` mode, refuse emitter requests without a verified client certificate."""
    if client_auth(settings) == "emitters":
        app.add_middleware(RequireEmitterCertificate)
