"""Spread long-lived client connections across worker processes.

Worker processes share one listening socket, and whichever is awake when a
client connects takes the connection and keeps it for as long as the client
keeps it alive. An interface engine sending batches over one keep-alive
connection would so pin all its load on one worker while the others idle.
Like nginx's ``keepalive_requests``, this asks the client to reconnect after
a number of requests (``Connection: close`` on the response); the reconnect
is then accepted by whichever worker is free, which evens out the load. A
reconnect on loopback or a LAN costs well under a millisecond.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MAX_TRACKED = 10_000


class KeepAliveLimit:
    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self._served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or self.max_requests <= 0 or client is None:
            await self.app(scope, receive, send)
            return
        key = (client[0], client[1])
        served = self._served.get(key, 0) + 1
        if len(self._served) >= _MAX_TRACKED:
            self._served.clear()
        close = served >= self.max_requests
        if close:
            self._served.pop(key, None)
        else:
            self._served[key] = served

        async def _send(message: Message) -> None:
            if close and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, _send)
