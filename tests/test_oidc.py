"""OIDC/JWT bearer tokens for human users: the verifier on its own, with keys
made at test time and a JWKS from a file and from a loopback HTTP server,
then wired into the real API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pydantic
import pytest

from auditsvc.domain.errors import Forbidden, Unauthenticated, Unavailable
from auditsvc.domain.oidc import JwksError, OidcConfig, OidcVerifier, caller_id, parse_jwks
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import TEST_SECRET_KEY, Service, event, query, running_service
from .idp import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    USERNAME,
    JwksServer,
    Key,
    b64url,
    claims,
    hmac_with_public_key,
    unsigned,
    write_jwks,
)

PATIENT = ("urn:oid:2.16.840.1.113883.3.9999.3", "MRN-SYNTH-OIDC-1")

RSA = Key.rsa("rsa-1")
EC = Key.ec("ec-1")
ED = Key.ed25519("ed-1")
ROGUE = Key.rsa("rsa-1")  # same kid as RSA, another key: an attacker's


def oidc_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
    }
    if "oidc_jwks_url" not in overrides:
        values["oidc_jwks_file"] = write_jwks(tmp_path / "jwks.json", RSA, EC, ED)
    values.update(overrides)
    return Settings(**values)


def verifier_for(settings: Settings, **options: Any) -> OidcVerifier:
    return OidcVerifier(OidcConfig.from_settings(settings), **options)


@pytest.fixture
def verifier(tmp_path: Path) -> OidcVerifier:
    return verifier_for(oidc_settings(tmp_path))


# --- accepted ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [RSA, EC, ED], ids=["RS256", "ES256", "EdDSA"])
async def test_a_valid_token_of_each_key_type_gives_its_user_and_role(verifier: OidcVerifier, key: Key) -> None:
    caller = await verifier.authenticate(key.sign(claims(["auditor"])))
    assert caller.role is Role.AUDITOR and caller.other_roles == ()
    assert caller.token_id == f"oidc:{SUBJECT}" and caller.name == USERNAME
    assert caller.systems == ()


async def test_a_user_holding_several_roles_gets_them_all_in_a_fixed_order(verifier: OidcVerifier) -> None:
    caller = await verifier.authenticate(RSA.sign(claims(["admin", "unrelated-group", "privacy_officer"])))
    assert caller.roles == (Role.PRIVACY_OFFICER, Role.ADMIN)


async def test_roles_from_a_nested_claim_through_a_role_map(tmp_path: Path) -> None:
    verifier = verifier_for(
        oidc_settings(
            tmp_path,
            oidc_roles_claim="realm_access.roles",
            oidc_role_map={"hipaa-audit": "auditor", "privacy-office": "privacy_officer"},
            oidc_actor_claim="email",
        )
    )
    token = RSA.sign(
        claims(None, realm_access={"roles": ["hipaa-audit", "auditor"]}, email="j.okafor@hospital.example")
    )
    caller = await verifier.authenticate(token)
    # "auditor" itself is not in this map: only mapped values count.
    assert caller.roles == (Role.AUDITOR,)
    assert caller.name == "j.okafor@hospital.example"


async def test_a_namespaced_claim_whose_name_holds_dots_and_a_space_separated_string(tmp_path: Path) -> None:
    verifier = verifier_for(oidc_settings(tmp_path, oidc_roles_claim="https://hospital.example/roles"))
    token = RSA.sign(claims(None, **{"https://hospital.example/roles": "auditor admin"}))
    assert (await verifier.authenticate(token)).roles == (Role.AUDITOR, Role.ADMIN)


async def test_without_the_actor_claim_the_subject_names_the_user(verifier: OidcVerifier) -> None:
    caller = await verifier.authenticate(RSA.sign(claims(preferred_username=None)))
    assert caller.name == SUBJECT


async def test_clock_skew_within_the_leeway_is_accepted(verifier: OidcVerifier) -> None:
    now = int(time.time())
    token = RSA.sign(claims(exp=now - 20, iat=now + 20, nbf=now + 20))
    assert (await verifier.authenticate(token)).role is Role.AUDITOR


async def test_a_token_without_kid_is_verified_by_the_only_key(tmp_path: Path) -> None:
    verifier = verifier_for(oidc_settings(tmp_path, oidc_jwks_file=write_jwks(tmp_path / "one.json", EC)))
    assert (await verifier.authenticate(EC.sign(claims(), kid=None))).role is Role.AUDITOR


def test_a_long_or_unprintable_subject_is_hashed_in_the_caller_id() -> None:
    assert caller_id("staff-0042") == "oidc:staff-0042"
    for sub in ("x" * 201, "name with spaces", "tab\tsub"):
        hashed = caller_id(sub)
        assert hashed.startswith("oidc:sha256:") and len(hashed) == len("oidc:sha256:") + 32
    assert caller_id("x" * 201) != caller_id("x" * 202)


# --- refused -----------------------------------------------------------------------


def ago(seconds: int) -> int:
    return int(time.time()) - seconds


def signed_payload(payload: bytes) -> str:
    return jwt.PyJWS().encode(payload, RSA.private, algorithm="RS256", headers={"kid": RSA.kid})


# Made when the test runs, so that only the named defect is wrong with each.
REFUSED: dict[str, tuple[Callable[[], str], str]] = {
    "wrong issuer": (lambda: RSA.sign(claims(iss="https://evil.example/")), "issuer"),
    "wrong audience": (lambda: RSA.sign(claims(aud="another-service")), "aud"),
    "no audience": (lambda: RSA.sign(claims(aud=None)), "aud"),
    "expired": (lambda: RSA.sign(claims(exp=ago(3600))), "expired"),
    "not yet valid": (lambda: RSA.sign(claims(nbf=ago(-3600))), "not valid yet"),
    "issued in the future": (lambda: RSA.sign(claims(iat=ago(-3600))), "not valid yet"),
    "no exp": (lambda: RSA.sign(claims(exp=None)), "exp"),
    "no sub": (lambda: RSA.sign(claims(sub=None)), "sub"),
    "bad signature": (lambda: ROGUE.sign(claims()), "signature does not verify"),
    "alg none": (lambda: unsigned(claims()), "algorithm is not accepted"),
    "HS256 keyed with the public key": (lambda: hmac_with_public_key(RSA, claims()), "algorithm is not accepted"),
    "unknown kid": (lambda: Key.ec("ec-unpublished").sign(claims()), "does not publish"),
    "no kid, several keys": (lambda: Key.ec("x").sign(claims(), kid=None), "does not publish"),
    "ES256 header, RSA key": (lambda: EC.sign(claims(), kid="rsa-1"), "does not fit its signing key"),
    "claims not JSON": (lambda: signed_payload(b"not json"), "invalid JWT"),
    "claims not an object": (lambda: signed_payload(b"[1, 2]"), "invalid JWT"),
    "header not JSON": (lambda: "bm90IGpzb24.e30.c2ln", "malformed JWT"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_tokens_are_unauthenticated_with_the_reason(verifier: OidcVerifier, case: str) -> None:
    make, says = REFUSED[case]
    token = make()
    with pytest.raises(Unauthenticated) as refused:
        await verifier.authenticate(token)
    assert says in refused.value.message
    assert SUBJECT not in refused.value.message and token not in refused.value.message


async def test_a_tampered_claim_breaks_the_signature(verifier: OidcVerifier) -> None:
    header, _, signature = RSA.sign(claims(["auditor"])).split(".")
    forged = b64url(json.dumps(claims(["admin"])).encode())
    with pytest.raises(Unauthenticated, match="signature"):
        await verifier.authenticate(f"{header}.{forged}.{signature}")


async def test_an_algorithm_left_out_of_the_settings_is_refused(tmp_path: Path) -> None:
    verifier = verifier_for(oidc_settings(tmp_path, oidc_algorithms=["ES256"]))
    assert (await verifier.authenticate(EC.sign(claims()))).role is Role.AUDITOR
    for key in (RSA, ED):
        with pytest.raises(Unauthenticated, match="accepted: ES256"):
            await verifier.authenticate(key.sign(claims()))


@pytest.mark.parametrize(
    "roles",
    [None, [], ["physician"], ["emitter"], "", {"auditor": True}],
    ids=["no roles claim", "empty list", "unmapped", "emitter", "empty string", "not a list"],
)
async def test_a_valid_identity_with_no_mapped_role_is_forbidden_not_unauthenticated(
    verifier: OidcVerifier, roles: Any
) -> None:
    token = RSA.sign(claims(None) | ({} if roles is None else {"roles": roles}))
    with pytest.raises(Forbidden, match="grants no auditsvc role"):
        await verifier.authenticate(token)


# --- settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"oidc_algorithms": ["HS256"]},
        {"oidc_algorithms": ["none"]},
        {"oidc_algorithms": []},
        {"oidc_role_map": {"integration": "emitter"}},
        {"oidc_audience": None},
        {"oidc_jwks_url": "https://idp.hospital.example/certs", "oidc_jwks_file": Path("jwks.json")},
        {"oidc_jwks_url": "ftp://idp.hospital.example/certs", "oidc_jwks_file": None},
        {"oidc_leeway_seconds": 3600},
    ],
    ids=["HS256", "none", "no algorithm", "emitter role", "no audience", "file and url", "not http", "leeway"],
)
def test_settings_refuse_unsafe_or_incomplete_oidc(tmp_path: Path, overrides: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        oidc_settings(tmp_path, **overrides)


def test_production_needs_an_https_jwks_url(tmp_path: Path) -> None:
    production = {"env": "production", "database_url": "postgresql://db/x", "secret_key": TEST_SECRET_KEY}
    with pytest.raises(pydantic.ValidationError, match="https"):
        oidc_settings(tmp_path, oidc_jwks_url="http://idp.hospital.example/certs", **production)
    oidc_settings(tmp_path, oidc_jwks_url="https://idp.hospital.example/certs", **production)


def test_the_jwks_keeps_only_asymmetric_signing_keys() -> None:
    document = json.loads(
        b'{"keys": ['
        + b",".join(
            json.dumps(k).encode()
            for k in (
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                {**Key.rsa("small", bits=1024).jwk()},
                {**RSA.jwk(), "kid": "enc", "use": "enc"},
                {**RSA.jwk(), "kid": "ps", "alg": "PS256"},
                EC.jwk(),
            )
        )
        + b"]}"
    )
    keys = parse_jwks(json.dumps(document).encode(), frozenset({"RS256", "ES256", "EdDSA"}))
    assert [k.kid for k in keys] == ["ec-1"]  # "ps" declares an algorithm we do not accept
    with pytest.raises(JwksError):
        parse_jwks(b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', frozenset({"RS256"}))
    with pytest.raises(JwksError):
        parse_jwks(b"<html>", frozenset({"RS256"}))


# --- JWKS over HTTP ----------------------------------------------------------------


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    with JwksServer(RSA).running() as server:
        yield server


async def test_jwks_from_a_url_is_cached(tmp_path: Path, idp: JwksServer) -> None:
    verifier = verifier_for(oidc_settings(tmp_path, oidc_jwks_url=idp.url))
    for _ in range(5):
        assert (await verifier.authenticate(RSA.sign(claims()))).role is Role.AUDITOR
    assert idp.requests == 1


async def test_a_rotated_key_is_fetched_on_its_first_token_and_refetching_is_rate_limited(
    tmp_path: Path, idp: JwksServer
) -> None:
    clock = [1000.0]
    verifier = verifier_for(
        oidc_settings(tmp_path, oidc_jwks_url=idp.url, oidc_jwks_min_refresh_seconds=30), clock=lambda: clock[0]
    )
    await verifier.authenticate(RSA.sign(claims()))
    clock[0] += 60
    new = Key.ec("ec-rotated")
    idp.publish(RSA, new)
    assert (await verifier.authenticate(new.sign(claims()))).role is Role.AUDITOR
    assert idp.requests == 2

    # Made-up key ids do not make a request each: one per 30 s at most.
    for i in range(10):
        with pytest.raises(Unauthenticated, match="does not publish"):
            await verifier.authenticate(Key.ec(f"made-up-{i}").sign(claims()))
    assert idp.requests == 2
    clock[0] += 31
    with pytest.raises(Unauthenticated, match="does not publish"):
        await verifier.authenticate(Key.ec("made-up-again").sign(claims()))
    assert idp.requests == 3


async def test_an_unreachable_jwks_is_503_at_first_and_stale_keys_serve_later(tmp_path: Path, idp: JwksServer) -> None:
    clock = [1000.0]
    verifier = verifier_for(
        oidc_settings(tmp_path, oidc_jwks_url=idp.url, oidc_jwks_cache_seconds=60, oidc_jwks_min_refresh_seconds=5),
        clock=lambda: clock[0],
    )
    idp.status = 503
    with pytest.raises(Unavailable):
        await verifier.authenticate(RSA.sign(claims()))
    clock[0] += 10
    idp.status = 200
    assert (await verifier.authenticate(RSA.sign(claims()))).role is Role.AUDITOR
    # The provider goes down after the cache expired: the keys in hand still verify.
    idp.status = 503
    clock[0] += 120
    assert (await verifier.authenticate(RSA.sign(claims()))).role is Role.AUDITOR
    assert idp.requests == 3


# --- through the real API ----------------------------------------------------------


@pytest.fixture
def oidc_service(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    configured = Settings(
        database_url=settings.database_url,
        secret_key=TEST_SECRET_KEY,
        data_dir=settings.data_dir,
        log_name=settings.log_name,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=write_jwks(tmp_path / "jwks.json", RSA, EC),
    )
    with running_service(configured) as running:
        yield running


def test_an_oidc_privacy_officer_reads_and_the_read_is_audited_under_their_identity(oidc_service: Service) -> None:
    emitter = oidc_service.token(Role.EMITTER, ["epic-adt"])
    with oidc_service.client(emitter) as client:
        client.post("/v1/events", json={"events": [event([PATIENT])]}).raise_for_status()
    officer = RSA.sign(claims(["privacy_officer", "auditor"]))
    report_body = {"identifier": {"system": PATIENT[0], "value": PATIENT[1]}}
    with oidc_service.client(officer) as client:
        report = client.post("/v1/reports/patient-access", json=report_body)
        key = client.get("/v1/checkpoints/verifier-key")
        append = client.post("/v1/events", json={"events": [event([PATIENT])]})
    assert report.status_code == 200, report.text
    assert key.status_code == 200, key.text  # the same user, acting as auditor
    assert append.status_code == 403 and "roles are privacy_officer, auditor" in append.json()["detail"]

    rows = query(
        str(oidc_service.settings.database_url),
        "SELECT record::json AS r FROM events WHERE record::json->>'event_type' = 'audit-log-query'",
    )
    [read] = [json.loads(row["r"]) for row in rows]
    assert read["actor"] == {"id": f"oidc:{SUBJECT}", "type": "user", "role": "privacy_officer", "name": USERNAME}
    assert read["emitter"] == f"oidc:{SUBJECT}"
    assert read["destination"]["system_id"] == "auditsvc:privacy_officer"


def test_refused_oidc_tokens_through_the_api(oidc_service: Service) -> None:
    cases = [
        (RSA.sign(claims(exp=ago(3600))), 401, "expired"),
        (unsigned(claims()), 401, "algorithm"),
        (hmac_with_public_key(RSA, claims()), 401, "algorithm"),
        (ROGUE.sign(claims()), 401, "signature"),
        (RSA.sign(claims(["physician"])), 403, "grants no auditsvc role"),
    ]
    for token, status, says in cases:
        with oidc_service.client(token) as client:
            response = client.get("/v1/checkpoints/verifier-key")
        assert response.status_code == status, response.text
        assert says in response.json()["detail"]
        if status == 401:
            assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_a_jwt_is_refused_clearly_where_oidc_is_not_configured(service: Service) -> None:
    with service.client(RSA.sign(claims())) as client:
        response = client.get("/v1/checkpoints/verifier-key")
    assert response.status_code == 401
    assert "does not accept OIDC/JWT bearer tokens" in response.json()["detail"]
