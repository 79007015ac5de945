"""TLS terminated by ``auditsvc serve`` itself, and client certificates (mTLS).

A throwaway CA, server certificate and client certificates are made with
``cryptography`` for each run; the service is the real ``auditsvc serve``
process, on the test database.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from auditsvc_sdk import AuditClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditsvc.api.tls import check_tls_settings, client_auth
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import env_for, event, make_token, query, serve_process


@dataclass
class Issued:
    cert: Path
    key: Path


class Ca:
    """A throwaway certificate authority that writes PEM files under ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / f"{name}.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.directory / f"{common_name}.crt", self.directory / f"{common_name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return issued


@dataclass
class Pki:
    ca: Ca
    server: Issued
    emitter: Issued
    stranger: Issued  # a client certificate from another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Ca(directory, "hospital-ca"), Ca(directory, "other-ca")
    return Pki(
        ca,
        ca.issue("auditsvc.hospital.example", server=True),
        ca.issue("mirth-adt-out", server=False),
        other.issue("rogue-engine", server=False),
    )


def client(pki: Pki, base: str, token: str | None = None, cert: Issued | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca.pem))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, verify=context, headers=headers, timeout=10)


@contextmanager
def serving(settings: Settings, pki: Pki, *extra: str) -> Iterator[str]:
    """``auditsvc serve`` over TLS as its own process; yields its https:// base URL."""
    args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), *extra]

    def ready(base: str) -> bool:
        with client(pki, base, cert=pki.emitter) as probe:
            return probe.get("/readyz").status_code == 200

    with serve_process(*args, env=env_for(settings), scheme="https", ready=ready) as base:
        yield base


def handshake_alert(base: str, pki: Pki, cert: Issued | None) -> str | None:
    """Why a TLS 1.2 handshake failed (None: it completed). In TLS 1.2 the
    client certificate is checked inside the handshake, so a refusal surfaces
    here rather than at the first read (the server closes the connection)."""
    context = ssl.create_default_context(cafile=str(pki.ca.pem))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                return None
        except ssl.SSLError as exc:
            return str(exc.reason)


def stored(settings: Settings) -> int:
    return int(query(str(settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])


def test_emitters_need_a_client_certificate_and_people_need_only_their_token(settings: Settings, pki: Pki) -> None:
    emitter = make_token(settings, Role.EMITTER, ["epic-adt"])
    auditor = make_token(settings, Role.AUDITOR)
    with serving(settings, pki, "--tls-client-ca", str(pki.ca.pem)) as base:
        # HTTPS works, and says so for the future (HSTS).
        with client(pki, base) as anonymous:
            health = anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")

        # Plain HTTP on the TLS port gets no HTTP answer at all.
        with pytest.raises(httpx.TransportError):
            httpx.get(base.replace("https://", "http://") + "/healthz", timeout=5)

        # An emitter without a client certificate: refused, nothing stored.
        with client(pki, base, emitter) as no_cert:
            refused = no_cert.post("/v1/events", json={"events": [event()]})
        assert refused.status_code == 403, refused.text
        assert "client certificate" in refused.json()["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert stored(settings) == 0

        # With a certificate from the hospital CA: accepted.
        with client(pki, base, emitter, cert=pki.emitter) as with_cert:
            accepted = with_cert.post("/v1/events", json={"events": [event()]})
        assert accepted.status_code == 200, accepted.text
        assert stored(settings) == 1

        # A certificate from another CA fails the handshake: no HTTP answer.
        with pytest.raises(httpx.TransportError), client(pki, base, emitter, cert=pki.stranger) as rogue:
            rogue.post("/v1/events", json={"events": [event()]})
        assert stored(settings) == 1
        assert handshake_alert(base, pki, pki.stranger) is not None
        assert handshake_alert(base, pki, pki.emitter) is None
        assert handshake_alert(base, pki, None) is None  # optional at the TLS layer: people have none

        # The SDK, with the certificate on its transport, delivers.
        context = ssl.create_default_context(cafile=str(pki.ca.pem))
        context.load_cert_chain(str(pki.emitter.cert), str(pki.emitter.key))
        with AuditClient(base, emitter, transport=httpx.HTTPTransport(verify=context)) as sdk:
            sdk.record(event())
            assert sdk.flush(timeout=10)
        assert stored(settings) == 2

        # People (auditor, privacy officer, admin) use their token only.
        with client(pki, base, auditor) as person:
            assert person.get("/v1/checkpoints/verifier-key").status_code == 200


def test_required_client_certificates_refuse_the_handshake_without_one(settings: Settings, pki: Pki) -> None:
    auditor = make_token(settings, Role.AUDITOR)
    args = ("--tls-client-ca", str(pki.ca.pem), "--tls-client-auth", "required")
    with serving(settings, pki, *args) as base:
        with pytest.raises(httpx.TransportError), client(pki, base, auditor) as no_cert:
            no_cert.get("/v1/checkpoints/verifier-key")
        assert handshake_alert(base, pki, None) is not None
        assert handshake_alert(base, pki, pki.stranger) is not None
        with client(pki, base, auditor, cert=pki.emitter) as with_cert:
            assert with_cert.get("/v1/checkpoints/verifier-key").status_code == 200


def test_tls_settings_that_do_not_fit_together_are_refused(tmp_path: Path, pki: Pki) -> None:
    base = {"secret_key": "x" * 44, "data_dir": tmp_path}
    cert, key, ca = pki.server.cert, pki.server.key, pki.ca.pem
    refused = {
        "cert without key": Settings(**base, tls_cert_file=cert),
        "client CA without TLS": Settings(**base, tls_client_ca_file=ca),
        "required without a CA": Settings(**base, tls_cert_file=cert, tls_key_file=key, tls_client_auth="required"),
        "missing file": Settings(**base, tls_cert_file=tmp_path / "nope.pem", tls_key_file=key),
    }
    for name, settings in refused.items():
        with pytest.raises(ValueError):
            check_tls_settings(settings)
            pytest.fail(f"{name} was not refused")
    with_ca = Settings(**base, tls_cert_file=cert, tls_key_file=key, tls_client_ca_file=ca)
    check_tls_settings(with_ca)
    assert client_auth(with_ca) == "emitters"
    assert client_auth(Settings(**base, tls_cert_file=cert, tls_key_file=key)) == "none"
