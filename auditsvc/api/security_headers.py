"""Security headers on every response: answers, errors, 404s and the 500 of
last resort alike (this middleware sits outside the error handlers).

The API answers JSON (and signed notes as text) to programs, and every
answer may carry PHI, so nothing may be cached, sniffed into something
executable, framed, or leak its URL in a Referer:

* ``Cache-Control: no-store`` (and ``Pragma: no-cache`` for HTTP/1.0 caches),
  unless a route set its own;
* ``X-Content-Type-Options: nosniff``;
* ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``
  (nothing in a response may load or run anything) and ``X-Frame-Options:
  DENY`` for browsers that predate CSP; ``Referrer-Policy: no-referrer``;
  ``Cross-Origin-Resource-Policy: same-origin``;
* ``Strict-Transport-Security`` when the request came over HTTPS, whether
  the service terminated TLS itself or a trusted proxy said so
  (``X-Forwarded-Proto``, honoured by uvicorn for ``--forwarded-allow-ips``).

The interactive API documentation pages (``/docs``, ``/redoc``) load their
script and style sheet from a CDN; they get a policy that allows exactly that.

The web console (every path the API does not own: api/console) gets a
policy that lets its pages load the script, style sheet and images the
service ships, and nothing else: no inline script or style, no ``eval``, no
other origin, forms posted only to the console itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = b"max-age=31536000; includeSubDomains"
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    b"connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

CONSOLE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
API_PREFIXES = ("/v1/", "/fhir", "/healthz", "/readyz", "/metrics", "/openapi.json")
"""Paths the API answers; every other path is the console's."""

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_NO_STORE: tuple[tuple[bytes, bytes], ...] = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))


class SecurityHeaders:
    """Pure ASGI middleware (no buffering, streaming bodies pass untouched)."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.docs_paths:
            csp = DOCS_CSP
        elif path.startswith(API_PREFIXES):
            csp = API_CSP
        else:
            csp = CONSOLE_CSP
        https = scope.get("scheme") == "https"

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _ALWAYS if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if b"cache-control" not in present:
                    headers.extend(_NO_STORE)
                if https and b"strict-transport-security" not in present:
                    headers.append((b"strict-transport-security", HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)
