"""The ATNA syslog listeners, live: TLS with and without client certificates,
plain TCP with each framing, UDP; hostile input; resends; backpressure.

Listeners run in-process on ephemeral ports against the test's PostgreSQL;
senders are asyncio streams and sockets (and util-linux ``logger`` in
tests/test_syslog_logger.py). Waits poll for what must happen, with a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from auditsvc.domain.atna import AtnaOrigin, AtnaUnmappable, map_audit_message
from auditsvc.domain.reports import PatientAccessQuery, patient_access_report
from auditsvc.domain.tokens import Caller, Role
from auditsvc.runtime import AuditLog, open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url
from auditsvc.syslog.ingest import IngestConfig
from auditsvc.syslog.listeners import ListenerConfig, SyslogListeners
from auditsvc.syslog.service import syslog_listeners

from .conftest import fetch, run_cli
from .syslog_messages import BILLION_LAUGHS, EXTERNAL_ENTITY, audit_message, octet_counted, syslog_frame
from .test_tls import Ca, Issued

pytestmark = pytest.mark.db


@dataclass
class Pki:
    ca: Ca
    server: Issued
    pacs: Issued  # CN pacs-01
    ris: Issued  # CN ris-02
    rogue: Issued  # another CA's


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("syslog-pki"))


def make_pki(directory: Path) -> Pki:
    """The hospital's CA, the listener's certificate and two senders', and a stranger's."""
    ca, other = Ca(directory, "hospital-ca"), Ca(directory, "other-ca")
    return Pki(
        ca,
        ca.issue("syslog.hospital.example", server=True),
        ca.issue("pacs-01", server=False),
        ca.issue("ris-02", server=False),
        other.issue("rogue-engine", server=False),
    )


@dataclass
class Running:
    audit: AuditLog
    listeners: SyslogListeners
    url: str  # owner DSN, for looking at tables

    def port(self, transport: str) -> int:
        return self.listeners.ports[transport]  # type: ignore[index]


@asynccontextmanager
async def listening(
    settings: Settings,
    pki: Pki | None,
    *,
    client_auth: str = "required",
    cn_map: dict[str, list[str]] | None = None,
    ingest: IngestConfig | None = None,
    max_message_bytes: int = 256 * 1024,
) -> AsyncIterator[Running]:
    """Listeners on free ports (TLS only with ``pki``) for the block."""
    config = ListenerConfig(
        host="127.0.0.1",
        tls_port=0 if pki is not None else None,
        tcp_port=0,
        udp_port=0,
        cert_file=pki.server.cert if pki is not None else None,
        key_file=pki.server.key if pki is not None else None,
        client_ca_file=pki.ca.pem if pki is not None else None,
        client_auth=client_auth,
        cn_map=cn_map or {},
        max_message_bytes=max_message_bytes,
    )
    async with (
        open_audit_log(settings, runtime_url(settings), background=False) as audit,
        syslog_listeners(audit, config, ingest or IngestConfig(retry_seconds=0.05)) as listeners,
    ):
        yield Running(audit, listeners, str(settings.database_url))


def client_context(pki: Pki, cert: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.pem))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


async def send(port: int, data: bytes, context: ssl.SSLContext | None = None, pieces: int = 1) -> None:
    """Write ``data`` on one connection (in ``pieces`` writes) and close it."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):
        writer.write(data[at : at + step])
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def send_hostile(port: int, data: bytes) -> None:
    """``send``; the listener may close the connection before it is all written."""
    with contextlib.suppress(ConnectionError):
        await send(port, data)


def send_udp(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def events(url: str) -> list[dict[str, Any]]:
    rows = await fetch(url, "SELECT seq, record FROM events ORDER BY seq")
    return [{**json.loads(r["record"]), "seq": r["seq"]} for r in rows]


async def quarantine(url: str) -> list[dict[str, Any]]:
    rows = await fetch(
        url,
        "SELECT id, reason, detail, transport, emitter, times_received, status, replay_seqs, message_sealed "
        "FROM syslog_quarantine ORDER BY id",
    )
    return [dict(r) for r in rows]


async def count_events(url: str, n: int) -> None:
    async def enough() -> bool:
        return len(await events(url)) >= n

    await until(enough, f"{n} events")


async def count_quarantined(url: str, n: int) -> None:
    async def enough() -> bool:
        return len(await quarantine(url)) >= n

    await until(enough, f"{n} quarantine entries")


def mapped_identifier(msg: bytes) -> dict[str, str]:
    """What the mapping makes of the message's (first) patient."""
    [event, *_] = map_audit_message(msg, AtnaOrigin("tcp", None, None))
    identifier: dict[str, str] = event["patient"]["identifiers"][0]
    return identifier


OFFICER = Caller(token_id="officer-test", role=Role.PRIVACY_OFFICER, systems=(), name="Officer Test")


def test_tls_with_a_client_certificate_lands_in_the_chain_and_the_patient_report(settings: Settings, pki: Pki) -> None:
    one = audit_message("MRN-SYN-1001")
    two_patients = audit_message("MRN-SYN-1002", "MRN-SYN-1003", action="U")

    async def scenario() -> None:
        async with listening(settings, pki) as running:
            frames = octet_counted(syslog_frame(one), syslog_frame(two_patients, msgid="DICOM+RFC3881"))
            await send(running.port("tls"), frames, client_context(pki, pki.pacs), pieces=7)
            await count_events(running.url, 3)
            stored = await events(running.url)
            assert {e["emitter"] for e in stored} == {"syslog-tls:pacs-01"}
            assert all(e["source"]["system_id"] == "pacs-01" for e in stored)
            assert all("value" not in i for e in stored for i in e["patient"]["identifiers"])  # sealed
            report = await patient_access_report(
                running.audit, PatientAccessQuery(identifier=mapped_identifier(one)), OFFICER
            )
            assert [s["system_id"] for s in report["systems"]] == sorted(
                {stored[0]["source"]["system_id"], stored[0]["destination"]["system_id"]}
            )
            assert len(report["events"]) == 1
            assert await quarantine(running.url) == []

    asyncio.run(scenario())


def test_a_certificate_writes_only_as_a_party_its_cn_names_unless_the_map_widens_it(
    settings: Settings, pki: Pki
) -> None:
    from_pacs = syslog_frame(audit_message("MRN-SYN-2001", source="pacs-01"))
    from_lab = syslog_frame(audit_message("MRN-SYN-2002", source="lab-lis"))
    # ris-02 audits what it received from pacs-01: a party to it, as the destination
    received = syslog_frame(audit_message("MRN-SYN-2003", source="pacs-01", destination="ris-02"))

    async def scenario() -> None:
        async with listening(settings, pki, cn_map={"ris-02": ["lab-lis"]}) as running:
            # ris-02 may write as ris-02 and lab-lis; pacs-01 only as pacs-01
            await send(running.port("tls"), octet_counted(from_pacs, from_lab, received), client_context(pki, pki.ris))
            await count_quarantined(running.url, 1)
            await count_events(running.url, 2)
            [entry] = await quarantine(running.url)
            assert (entry["reason"], entry["emitter"], entry["transport"]) == (
                "source_not_allowed",
                "syslog-tls:ris-02",
                "tls",
            )
            assert "MRN-SYN" not in entry["detail"] and "MRN-SYN" not in entry["message_sealed"]
            stored = await events(running.url)
            assert sorted((e["source"]["system_id"], e["destination"]["system_id"]) for e in stored) == [
                ("lab-lis", "viewer-01"),
                ("pacs-01", "ris-02"),
            ]
            assert {e["emitter"] for e in stored} == {"syslog-tls:ris-02"}

    asyncio.run(scenario())


def test_tls_without_a_client_certificate(settings: Settings, pki: Pki) -> None:
    frame = syslog_frame(audit_message("MRN-SYN-3001", source="modality-ct"))

    async def scenario() -> None:
        async with listening(settings, pki) as running:  # required: no handshake
            for cert in (None, pki.rogue):  # none, or another CA's
                try:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", running.port("tls"), ssl=client_context(pki, cert)
                    )
                    writer.write(octet_counted(frame))
                    await writer.drain()
                    # TLS 1.3: the client's handshake ends before the server checks; its alert follows
                    assert await reader.read() == b""
                except (ssl.SSLError, ConnectionError):
                    pass
        async with listening(settings, pki, client_auth="optional") as running:
            await send(running.port("tls"), octet_counted(frame), client_context(pki, None))
            await count_events(running.url, 1)
            [stored] = await events(running.url)
            assert stored["emitter"] == "syslog-tls" and stored["source"]["system_id"] == "modality-ct"

    asyncio.run(scenario())


@pytest.mark.parametrize("framing", ["octet-counting", "LF", "NUL", "CRLF"])
def test_plain_tcp_takes_each_framing_in_any_split(settings: Settings, pki: Pki, framing: str) -> None:
    msgs = [syslog_frame(audit_message(f"MRN-SYN-40{i}", source="ris-02")) for i in range(3)]
    trailer = {"LF": b"\n", "NUL": b"\x00", "CRLF": b"\r\n"}.get(framing)
    stream = octet_counted(*msgs) if trailer is None else b"".join(m + trailer for m in msgs)

    async def scenario() -> None:
        async with listening(settings, pki) as running:
            await send(running.port("tcp"), stream, pieces=13)
            await count_events(running.url, 3)
            stored = await events(running.url)
            assert {e["emitter"] for e in stored} == {"syslog-tcp"}
            assert len({e["event_id"] for e in stored}) == 3

    asyncio.run(scenario())


def test_udp_one_message_a_datagram(settings: Settings, pki: Pki) -> None:
    async def scenario() -> None:
        async with listening(settings, pki) as running:
            send_udp(
                running.port("udp"),
                syslog_frame(audit_message("MRN-SYN-5001", source="xds-registry")),
                syslog_frame(audit_message("MRN-SYN-5002", source="xds-registry"), pri=110) + b"\n",
            )
            await count_events(running.url, 2)
            assert {e["emitter"] for e in await events(running.url)} == {"syslog-udp"}

    asyncio.run(scenario())


def test_hostile_input_harms_neither_the_listener_nor_what_is_stored(settings: Settings, pki: Pki) -> None:
    good = syslog_frame(audit_message("MRN-SYN-6001", source="ris-02"))
    unmappable = [
        syslog_frame(BILLION_LAUGHS),
        syslog_frame(EXTERNAL_ENTITY),
        syslog_frame(audit_message("MRN-SYN-6002")[:-40]),  # truncated XML
        syslog_frame(b"\xff\xfe not xml at all \x00\x01"),
        b"no syslog header at all",
    ]

    async def scenario() -> None:
        async with listening(settings, pki, max_message_bytes=64 * 1024) as running:
            tcp = running.port("tcp")
            await send(tcp, octet_counted(good))
            await count_events(running.url, 1)
            before = await events(running.url)
            await send_hostile(
                tcp, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100
            )  # TLS on the plain port
            await send_hostile(tcp, b"hello\n" + octet_counted(good))  # garbage first: closed, the rest not read
            await send_hostile(tcp, b"70000 " + b"<" * 70_000)  # a count over the limit
            await send_hostile(tcp, b"<85>" + b"a" * 70_000)  # no trailer, over the limit
            await send_hostile(tcp, octet_counted(good)[:30])  # cut off
            await send(tcp, octet_counted(*unmappable))
            await count_quarantined(running.url, len(unmappable))
            entries = await quarantine(running.url)
            assert all(e["status"] == "quarantined" and e["transport"] == "tcp" for e in entries)
            assert entries[-1]["reason"] == "syslog_header"
            assert all("lol" not in e["detail"] and "passwd" not in e["detail"] for e in entries)
            # still serving, and nothing stored was touched
            await send(tcp, octet_counted(syslog_frame(audit_message("MRN-SYN-6003", source="ris-02"))))
            await count_events(running.url, 2)
            after = await events(running.url)
            assert after[0] == before[0] and len(after) == 2
        result = await asyncio.to_thread(run_cli, settings, "verify", "--json")
        assert result.returncode == 0, result.stdout + result.stderr

    asyncio.run(scenario())


def test_a_resent_message_is_not_stored_twice(settings: Settings, pki: Pki) -> None:
    msg = audit_message("MRN-SYN-7001", source="ris-02")
    bad = audit_message("MRN-SYN-7002")[:-10]

    async def scenario() -> None:
        async with listening(settings, pki) as running:
            await send(running.port("tcp"), octet_counted(syslog_frame(msg), syslog_frame(bad)))
            await count_events(running.url, 1)
            await count_quarantined(running.url, 1)
            # the same messages again, with another header (a sender's retry after reconnecting)
            await send(running.port("tcp"), octet_counted(syslog_frame(msg, pri=86), syslog_frame(bad, host="x")))
            send_udp(running.port("udp"), syslog_frame(msg))

            async def counted_twice() -> bool:
                return [e["times_received"] for e in await quarantine(running.url)] == [2]

            await until(counted_twice, "the resent quarantined message counted")
            await running.listeners.ingest.drained()
            assert len(await events(running.url)) == 1

    asyncio.run(scenario())


def test_quarantine_replay_after_a_fix_appends_what_now_maps(settings: Settings, pki: Pki) -> None:
    """Here the "fix" is the real mapping after a mapping that refused."""
    from auditsvc.domain.quarantine import list_quarantine, replay_entry, select_for_replay, show_quarantined

    msg = audit_message("MRN-SYN-8001", "MRN-SYN-8002", source="ris-02")

    def broken(_msg: bytes, _origin: AtnaOrigin) -> list[dict[str, Any]]:
        raise AtnaUnmappable("unknown_schema", "not mapped yet")

    async def scenario() -> None:
        async with listening(settings, pki) as running:
            running.listeners.ingest._mapper_args = (broken,)
            await send(running.port("tcp"), octet_counted(syslog_frame(msg)))
            await count_quarantined(running.url, 1)
            [entry] = await list_quarantine(running.audit)
            assert entry["reason"] == "unknown_schema" and "message" not in entry
            admin = Caller(token_id="cli:test", role=Role.ADMIN, systems=(), name=None)
            shown = await show_quarantined(running.audit, admin, entry["id"], reveal=False)
            assert "message" not in shown and len(await events(running.url)) == 0
            revealed = await show_quarantined(running.audit, admin, entry["id"], reveal=True)
            assert "MRN-SYN-8001" in revealed["message"]
            [reveal_event] = await events(running.url)  # the reveal is in the chain
            assert reveal_event["event_type"] == "audit-log-query"
            assert reveal_event["attributes"]["query"] == "syslog-quarantine-reveal"

            assert await select_for_replay(running.audit, reason="other") == []
            [chosen] = await select_for_replay(running.audit, every=True)
            outcome = await replay_entry(running.audit, chosen, admin)
            assert outcome.status == "replayed" and len(outcome.seqs) == 2
            stored = await events(running.url)
            assert [e["seq"] for e in stored[1:3]] == list(outcome.seqs)
            assert {e["emitter"] for e in stored[1:3]} == {"syslog-tcp"}
            change = stored[3]  # the admin's replay, in the chain after the events it stored
            assert (change["event_type"], change["emitter"], change["attributes"]["change"]) == (
                "syslog-quarantine-change",
                "cli:test",
                "replayed",
            )
            assert change["attributes"]["seqs"] == ",".join(map(str, outcome.seqs))
            [entry] = await quarantine(running.url)
            assert entry["status"] == "replayed" and list(entry["replay_seqs"]) == list(outcome.seqs)
            assert (await replay_entry(running.audit, chosen, admin)).status == "skipped"  # once only
            assert len(await events(running.url)) == 4  # a skipped replay records nothing

    asyncio.run(scenario())


def test_a_full_queue_stops_reading_tcp_and_loses_nothing(settings: Settings, pki: Pki) -> None:
    """Backpressure: with appends held up, the connection is not read, so the
    sender's writes stop completing; once appends go on, every message lands."""
    messages = [syslog_frame(audit_message(f"MRN-SYN-9{i:03}", source="ris-02"), padding=60_000) for i in range(250)]
    stream = octet_counted(*messages)

    async def scenario() -> None:
        async with listening(settings, pki, ingest=IngestConfig(queue_messages=4, batch_messages=4)) as running:
            gate = asyncio.Event()
            appender = running.audit.appender
            real_append = appender.append_batch

            async def slow_append(batch: Any) -> Any:
                await gate.wait()
                return await real_append(batch)

            appender.append_batch = slow_append  # type: ignore[method-assign]
            _, writer = await asyncio.open_connection("127.0.0.1", running.port("tcp"))
            writer.write(stream)  # 15 MB: more than the socket buffers hold
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
            queue = running.listeners.ingest._queue
            assert queue.full()
            gate.set()
            await asyncio.wait_for(writer.drain(), 30)
            writer.close()
            await writer.wait_closed()
            await count_events(running.url, len(messages))
            assert len({e["event_id"] for e in await events(running.url)}) == len(messages)

    asyncio.run(scenario())


def test_tls_settings_that_cannot_serve_are_refused(pki: Pki) -> None:
    from auditsvc.syslog.listeners import tls_context

    with pytest.raises(ValueError, match="SYSLOG_TLS_CERT_FILE"):
        tls_context(ListenerConfig(tls_port=0))
    base = ListenerConfig(tls_port=0, cert_file=pki.server.cert, key_file=pki.server.key)
    with pytest.raises(ValueError, match="CLIENT_CA_FILE"):
        tls_context(base)
    assert tls_context(replace(base, client_auth="optional")).verify_mode == ssl.CERT_NONE
    assert tls_context(replace(base, client_ca_file=Path(pki.ca.pem))).verify_mode == ssl.CERT_REQUIRED
