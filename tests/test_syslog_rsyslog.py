"""A real syslog relay over TLS: rsyslog (Debian's, with its OpenSSL network
stream driver) forwards ATNA messages to the RFC 5425 listener, octet
counted, presenting the PACS's client certificate and checking the
listener's; the listener names the sender by that certificate's CN.

rsyslog takes the messages on a Unix socket of its own (util-linux
``logger`` writes them there), as a hospital's relay takes its hosts' logs.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from auditsvc.settings import Settings

from .syslog_messages import audit_message
from .test_syslog_listeners import Pki, count_events, events, listening, make_pki, quarantine
from .test_syslog_logger import LOGGER, logger_args

pytestmark = pytest.mark.db

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)
OSSL_DRIVERS = list(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so"))  # Debian's rsyslog-openssl
needs_rsyslog = pytest.mark.skipif(
    RSYSLOGD is None or LOGGER is None or not OSSL_DRIVERS,
    reason="rsyslog with its OpenSSL driver and util-linux logger are needed: apt-get install rsyslog-openssl",
)


def relay_config(directory: Path, socket: Path, pki: Pki, port: int) -> str:
    # x509/name: rsyslog checks the listener's certificate against the
    # permitted peer by its subjectAltName dNSName (RFC 5425 section 5.2),
    # which for the test listener's certificate is localhost.
    return f"""
global(workDirectory="{directory}" maxMessageSize="64k"
       defaultNetstreamDriver="ossl"
       defaultNetstreamDriverCAFile="{pki.ca.pem}"
       defaultNetstreamDriverCertFile="{pki.pacs.cert}"
       defaultNetstreamDriverKeyFile="{pki.pacs.key}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" UseSpecialParser="off" RateLimit.Interval="0")
# rsyslog's own messages (a refused handshake, say) to a file the test shows on failure.
if $syslogtag startswith "rsyslogd" then {{
  action(type="omfile" file="{directory}/rsyslogd.log")
  stop
}}
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("rsyslog-pki"))


@needs_rsyslog
def test_rsyslog_relays_atna_messages_over_tls_with_its_client_certificate(
    settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    assert RSYSLOGD is not None and LOGGER is not None
    socket = tmp_path / "relay.sock"
    messages = [audit_message(f"MRN-SYN-R{i}", source="pacs-01", when=f"2026-12-06T06:0{i}:00Z") for i in range(3)]

    async def scenario() -> None:
        async with listening(settings, pki) as running:
            conf = tmp_path / "rsyslog.conf"
            conf.write_text(relay_config(tmp_path, socket, pki, running.port("tls")))
            relay = await asyncio.create_subprocess_exec(
                RSYSLOGD,
                "-n",
                "-f",
                str(conf),
                "-i",
                str(tmp_path / "rsyslogd.pid"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                for _ in range(100):
                    if socket.exists() or relay.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                assert socket.exists(), "rsyslogd did not open its socket"
                for msg in messages:
                    logger = await asyncio.create_subprocess_exec(*logger_args(socket, "unix", msg))
                    assert await logger.wait() == 0
                try:
                    await count_events(running.url, len(messages))
                except AssertionError:
                    relay.terminate()
                    output = (await relay.communicate())[0].decode(errors="replace")
                    own = tmp_path / "rsyslogd.log"
                    said = output + (own.read_text() if own.exists() else "")
                    raise AssertionError(
                        f"quarantine: {await quarantine(running.url)}; rsyslogd said:\n{said}"
                    ) from None
            finally:
                if relay.returncode is None:
                    relay.terminate()
                    await relay.wait()
            stored = await events(running.url)
            assert {e["emitter"] for e in stored} == {"syslog-tls:pacs-01"}  # the relay's certificate
            assert all(e["attributes"]["origin"] == "atna-syslog" for e in stored)
            assert sorted(e["occurred_at"] for e in stored) == [f"2026-12-06T06:0{i}:00.000000Z" for i in range(3)]
            assert await quarantine(running.url) == []

    asyncio.run(scenario())
