"""Who a syslog sender is, and which systems it may write as.

On the HTTP API an emitter's token names its source systems; here the TLS
client certificate does (DESIGN.md): its subject CN names the system the
sender may write as, and ``AUDITSVC_SYSLOG_CN_MAP`` may widen it (a PACS
whose certificate says ``pacs-01`` may also write as ``ris``). In ATNA both
parties of an exchange audit it, so the sender's system may be the event's
source or its destination (an import, or the results of its own query,
come from the other party); never a reserved source. A sender
without a client certificate (plain TCP, UDP, or TLS in ``optional`` mode)
is trusted as its network is: the source comes from the message, except the
service's own reserved systems, which no sender may claim.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..domain.ingest import reported_by_a_party
from ..domain.reserved import is_reserved_system

EMITTER_PREFIX = "syslog"


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """``emitter`` is recorded with every event the sender's messages become
    (``syslog-tls:<CN>``, ``syslog-tls``, ``syslog-tcp``, ``syslog-udp``);
    ``systems`` the systems it may write as (None: any not reserved)."""

    emitter: str
    systems: tuple[str, ...] | None

    def may_report(self, source: str, destination: str) -> bool:
        """A sender reports exchanges it is a party to: its system is the
        event's source or its destination (``ingest.reported_by_a_party``)."""
        if self.systems is None:
            return not is_reserved_system(source)
        return reported_by_a_party(source, destination, self.systems)


def anonymous(transport: str) -> SenderIdentity:
    return SenderIdentity(f"{EMITTER_PREFIX}-{transport}", None)


def certified(common_name: str, cn_map: Mapping[str, Iterable[str]]) -> SenderIdentity:
    systems = dict.fromkeys([common_name, *cn_map.get(common_name, ())])
    return SenderIdentity(f"{EMITTER_PREFIX}-tls:{common_name}", tuple(systems))


def common_name(der: bytes) -> str | None:
    """The subject CN of a DER certificate (None without one)."""
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else None


def tls_sender(ssl_object: ssl.SSLObject | None, cn_map: Mapping[str, Iterable[str]]) -> SenderIdentity:
    """The identity of a TLS connection from the certificate its handshake verified."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return anonymous("tls")
    name = common_name(der)
    # A verified certificate without a CN names no system: it may write as none.
    return certified(name, cn_map) if name else SenderIdentity(f"{EMITTER_PREFIX}-tls:", ())
