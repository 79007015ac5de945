"""The asyncio syslog servers: RFC 5425 TLS, RFC 6587 TCP, RFC 5426 UDP.

Each TCP or TLS connection has its own ``FrameDecoder`` and sender identity
(the TLS client certificate's CN, auditsvc/syslog/identity.py); it reads,
frames and ``await``s each frame into the ingest queue, so when the queue is
full the connection is simply not read (backpressure, nothing dropped). A
framing error (garbage, a frame over ``max_message_bytes``, a counted frame
cut off) closes that connection only, counted by reason; frames before it
were taken. A UDP datagram is one message; one too large for the limit, or
one that finds the queue full, is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..api.tls import CIPHERS
from ..settings import Settings
from ..telemetry import syslog as metrics
from .framing import FrameDecoder, FramingError
from .identity import SenderIdentity, anonymous, tls_sender
from .ingest import ListenerTransport, Received, SyslogIngest

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ListenerConfig:
    host: str = "127.0.0.1"
    tls_port: int | None = None
    tcp_port: int | None = None
    udp_port: int | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    client_auth: str = "required"
    cn_map: Mapping[str, list[str]] = field(default_factory=dict)
    max_message_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> ListenerConfig:
        return cls(
            host=s.syslog_host,
            tls_port=s.syslog_tls_port,
            tcp_port=s.syslog_tcp_port,
            udp_port=s.syslog_udp_port,
            cert_file=s.syslog_tls_cert_file or s.tls_cert_file,
            key_file=s.syslog_tls_key_file or s.tls_key_file,
            client_ca_file=s.syslog_tls_client_ca_file or s.tls_client_ca_file,
            client_auth=s.syslog_tls_client_auth,
            cn_map=dict(s.syslog_cn_map),
            max_message_bytes=s.syslog_max_message_bytes,
        )

    @property
    def enabled(self) -> bool:
        return any(port is not None for port in (self.tls_port, self.tcp_port, self.udp_port))


def syslog_configured(s: Settings) -> bool:
    return ListenerConfig.from_settings(s).enabled


def tls_context(config: ListenerConfig) -> ssl.SSLContext:
    """The TLS listener's context; ``ValueError`` naming the missing setting."""
    if config.cert_file is None or config.key_file is None:
        raise ValueError(
            "the syslog TLS listener needs AUDITSVC_SYSLOG_TLS_CERT_FILE and _KEY_FILE "
            "(or AUDITSVC_TLS_CERT_FILE and _KEY_FILE)"
        )
    if config.client_auth == "required" and config.client_ca_file is None:
        raise ValueError(
            "AUDITSVC_SYSLOG_TLS_CLIENT_AUTH=required needs AUDITSVC_SYSLOG_TLS_CLIENT_CA_FILE "
            "(or AUDITSVC_TLS_CLIENT_CA_FILE); set it to 'optional' to take senders without certificates"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_cert_chain(str(config.cert_file), str(config.key_file))
    if config.client_ca_file is not None:
        context.load_verify_locations(cafile=str(config.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED if config.client_auth == "required" else ssl.CERT_OPTIONAL
    return context


def _peer(writer: asyncio.StreamWriter | asyncio.BaseTransport, address: object = None) -> str | None:
    peer = address if address is not None else writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, ingest: SyslogIngest, max_bytes: int) -> None:
        self._ingest, self._max = ingest, max_bytes
        self._sender = anonymous("udp")

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) > self._max:
            metrics.dropped("udp", "oversize")
            return
        frame = data.rstrip(b"\r\n\x00")  # some senders end a datagram with a trailer too
        if frame:
            self._ingest.offer(Received(frame, "udp", _peer(None, addr), self._sender))  # type: ignore[arg-type]


class SyslogListeners:
    """The configured listeners, started and stopped together; ``ports`` are
    the bound ones (port 0 in the settings: any free port, for tests)."""

    def __init__(self, config: ListenerConfig, ingest: SyslogIngest) -> None:
        self.config = config
        self.ingest = ingest
        self.ports: dict[ListenerTransport, int] = {}
        self._servers: list[asyncio.Server] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        config = self.config
        if config.tls_port is not None:
            context = tls_context(config)
            await self._serve_stream("tls", config.tls_port, context)
        if config.tcp_port is not None:
            await self._serve_stream("tcp", config.tcp_port, None)
        if config.udp_port is not None:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.ingest, config.max_message_bytes), local_addr=(config.host, config.udp_port)
            )
            self._udp = transport
            self.ports["udp"] = transport.get_extra_info("sockname")[1]

    async def _serve_stream(self, transport: ListenerTransport, port: int, context: ssl.SSLContext | None) -> None:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._read_connection(transport, reader, writer)
            except asyncio.CancelledError:
                pass  # stop(): the connection's end, not an error of the server
            finally:
                self._connections.discard(task)

        if context is None:
            server = await asyncio.start_server(connected, self.config.host, port, limit=READ_CHUNK)
        else:
            server = await asyncio.start_server(
                connected, self.config.host, port, limit=READ_CHUNK, ssl=context, ssl_handshake_timeout=30.0
            )
        self._servers.append(server)
        self.ports[transport] = server.sockets[0].getsockname()[1]

    async def _read_connection(
        self, transport: ListenerTransport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sender: SenderIdentity = (
            tls_sender(writer.get_extra_info("ssl_object"), self.config.cn_map)
            if transport == "tls"
            else anonymous(transport)
        )
        peer = _peer(writer)
        decoder = FrameDecoder(self.config.max_message_bytes)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                frames = decoder.feed(data) if data else decoder.finish()
                for frame in frames:
                    await self.ingest.submit(Received(frame, transport, peer, sender))
                if not data:
                    break
        except FramingError as exc:
            metrics.connection_closed(transport, exc.reason)
            log.warning("syslog %s connection closed: %s", transport, exc.detail)  # no PHI: sizes and codes
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            metrics.connection_closed(transport, "connection_error")
            log.info("syslog %s connection failed (%s)", transport, type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        """Stop taking connections and datagrams; open connections are closed."""
        for server in self._servers:
            server.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
