"""The role matrix of docs/roles.md, exhaustively, against the real service.

The routes are enumerated from the application itself, so a new endpoint
without a row in the documented matrix fails here; every route is then sent
a request as every role (API token, and OIDC token for human roles), and
with no, an expired, a revoked, a malformed and a wrong-scheme credential.
One service (with OIDC configured) serves the whole module.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastapi.routing
import httpx
import pytest

from auditsvc.api.app import create_app
from auditsvc.api.console.guard import is_console_path
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import PoolConfig, create_engine
from auditsvc.store.session import driver_connection
from auditsvc.store.tokens import revoke_token

from .conftest import REPO, TEST_SECRET_KEY, Service, _admin, _with_database, event, query, running_service
from .fhir_feed_samples import patient_read
from .idp import AUDIENCE, ISSUER, Key, claims, unsigned, write_jwks
from .test_auth import insert

pytestmark = pytest.mark.db

ROLES = (Role.EMITTER, Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN)
HUMAN_ROLES = ROLES[1:]
CELLS = {"allowed", "403", "public"}
IDP_KEY = Key.ec("matrix-1")
ROGUE_KEY = Key.ec("matrix-1")  # the same kid, another key
PATIENT = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-MATRIX-0001")
ALERT_ID = "0b9c4f1e-7a52-4c1d-9d2e-3f6a8b7c5d40"

Route = tuple[str, str]


def documented_matrix() -> dict[Route, dict[Role, str]]:
    """The table under "## The matrix" in docs/roles.md."""
    text = (REPO / "docs" / "roles.md").read_text()
    section = text.split("## The matrix", 1)[1].split("\n## ", 1)[0]
    matrix: dict[Route, dict[Role, str]] = {}
    for line in section.splitlines():
        row = re.fullmatch(r"\| `([A-Z]+) (\S+)` \|(.*)\|", line.strip())
        if row is None:
            continue
        cells = [c.strip() for c in row.group(3).split("|")]
        assert len(cells) == len(ROLES) and set(cells) <= CELLS, line
        route = (row.group(1), row.group(2))
        assert route not in matrix, f"two rows for {route}"
        matrix[route] = dict(zip(ROLES, cells, strict=True))
    return matrix


def application_routes() -> list[Route]:
    """Every (method, path) the application routes, HEAD aside."""
    app = create_app(Settings(env="development"))
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = iterate(app.routes) if iterate is not None else app.routes
    found = {
        (method, path.replace(":path}", "}"))  # as OpenAPI names it
        for route in routes
        if isinstance(path := getattr(route, "path", None), str)
        and not is_console_path(path)  # the console's session-cookie pages: tests/test_console_*.py
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    return sorted(found, key=lambda r: (r[1], r[0]))


MATRIX = documented_matrix()
ROUTES = application_routes()
PUBLIC = [r for r in ROUTES if r in MATRIX and set(MATRIX[r].values()) == {"public"}]
PROTECTED = [r for r in ROUTES if r not in PUBLIC]  # undocumented routes are held to 401 too


def route_id(route: Route) -> str:
    return f"{route[0]} {route[1]}"


# --- the document and the application agree ---------------------------------------


def test_every_route_has_one_documented_row_and_every_row_a_route() -> None:
    missing = [route_id(r) for r in ROUTES if r not in MATRIX]
    stale = [route_id(r) for r in MATRIX if r not in ROUTES]
    assert not missing, f"routes without a row in docs/roles.md: {missing}"
    assert not stale, f"rows in docs/roles.md for routes that do not exist: {stale}"
    for route, cells in MATRIX.items():
        assert "public" not in cells.values() or set(cells.values()) == {"public"}, route


def test_the_route_enumeration_covers_the_openapi_document() -> None:
    document = create_app(Settings(env="development")).openapi()
    in_schema = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops if m != "head"}
    assert in_schema <= set(ROUTES)
    assert len(ROUTES) >= len(in_schema) > 0


# --- one service for the module ----------------------------------------------------


@dataclass
class World:
    service: Service
    http: httpx.Client
    tokens: dict[Role, str]
    expired: dict[Role, str]
    revoked: dict[Role, str]
    event_id: str
    tree_size: int

    def stored_count(self) -> int:
        return int(query(str(self.service.settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])


def revoke(settings: Settings, token: str) -> None:
    token_id = token.split("_", 2)[1]

    async def _revoke() -> None:
        engine = create_engine(str(settings.database_url), PoolConfig.from_settings(settings))
        try:
            async with driver_connection(engine) as conn:
                assert await revoke_token(conn, token_id)
        finally:
            await engine.dispose()

    asyncio.run(_revoke())


@pytest.fixture(scope="module")
def world(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"asvc_t_{secrets.token_hex(6)}"
    _admin(server_url, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    tmp = tmp_path_factory.mktemp("matrix")
    settings = Settings(
        database_url=_with_database(server_url, name),
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp / "data",
        log_name="test.auditsvc.local/log",
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=write_jwks(tmp / "jwks.json", IDP_KEY),
    )
    try:
        with running_service(settings) as service, httpx.Client(base_url=service.url, timeout=30) as http:

            def systems(role: Role) -> list[str]:
                return ["epic-adt"] if role is Role.EMITTER else []

            tokens = {role: service.token(role, systems(role)) for role in ROLES}
            past = datetime.now(UTC) - timedelta(minutes=5)
            expired = {role: insert(settings, role, systems(role), past) for role in ROLES}
            revoked = {role: service.token(role, systems(role)) for role in ROLES}
            for token in revoked.values():
                revoke(settings, token)
            seed = event([PATIENT], purpose_of_use="ETREAT")  # break-glass: POST /v1/reviews may review it
            bearer = {"Authorization": f"Bearer {tokens[Role.EMITTER]}"}
            http.post("/v1/events", json={"events": [seed]}, headers=bearer).raise_for_status()
            admin = {"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
            http.post("/v1/checkpoints", headers=admin).raise_for_status()
            # GET /v1/systems/{system_id} answers 404 for an id with no entry.
            lab = {"name": "Lab", "relationship": "workforce", "baa": {"status": "not_required"}}
            http.put("/v1/systems/lab-lis", json=lab, headers=admin).raise_for_status()
            # POST /v1/alerts/{alert_id}/acknowledge acknowledges an alert that exists (idempotent).
            query(
                str(settings.database_url),
                "INSERT INTO alerts (log_id, alert_id, kind, alert_key, systems, details, raised_at, raised_seq, "
                "next_attempt_at) VALUES (1, $1, 'new_flow', 'matrix', '{}', '{}', now(), 0, now())",
                uuid.UUID(ALERT_ID),
            )
            [row] = query(str(settings.database_url), "SELECT max(tree_size) AS n FROM checkpoints")
            yield World(service, http, tokens, expired, revoked, seed["event_id"], int(row["n"]))
    finally:
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def minimal_request(world: World, route: Route) -> dict[str, Any]:
    """A request that the route serves with 2xx to a role it admits."""
    method, path = route
    bodies: dict[Route, dict[str, Any]] = {
        ("POST", "/v1/events"): {"json": {"events": [event([PATIENT])]}},
        ("POST", "/v1/reports/patient-access"): {"json": {"identifier": {"system": PATIENT[0], "value": PATIENT[1]}}},
        ("POST", "/v1/reports/system-access"): {"json": {"system_id": "epic-adt"}},
        ("POST", "/v1/reports/actor-access"): {"json": {"actor_id": "mirth-engine/ADT-OUT"}},
        ("POST", "/v1/reports/activity"): {"json": {}},
        ("PUT", "/v1/systems/{system_id}"): {
            "json": {"name": "Lab", "relationship": "workforce", "baa": {"status": "not_required"}}
        },
        ("POST", "/v1/reports/disclosures"): {"json": {"identifier": {"system": PATIENT[0], "value": PATIENT[1]}}},
        ("POST", "/v1/disclosure-suspensions"): {
            "json": {"recipient_system_id": "state-oig", "ends": "2099-01-01", "reference": "Letter"}
        },
        ("POST", "/v1/reviews"): {"json": {"event_id": world.event_id, "verdict": "investigate"}},
        ("POST", "/fhir/AuditEvent"): {"json": patient_read("matrix")},
        ("POST", "/fhir"): {"json": {"resourceType": "Bundle", "type": "batch", "entry": []}},
        ("POST", "/fhir/"): {"json": {"resourceType": "Bundle", "type": "batch", "entry": []}},
        ("POST", "/fhir/AuditEvent/_search"): {"data": {"date": "ge2000"}},
    }
    params: dict[str, dict[str, int | str]] = {
        "/v1/proofs/inclusion": {"seq": 0, "tree_size": world.tree_size},
        "/v1/proofs/consistency": {"first": 1, "second": world.tree_size},
        "/fhir/AuditEvent": {"date": "ge2000"},
    }
    try:
        url = path.format(event_id=world.event_id, tree_size=world.tree_size, system_id="lab-lis", alert_id=ALERT_ID)
    except KeyError as exc:
        raise AssertionError(f"teach minimal_request a value for {exc} in {route_id(route)}") from None
    return {"method": method, "url": url, "params": params.get(path), **bodies.get(route, {})}


def detail(response: httpx.Response) -> str:
    """An error's text: ``detail``, or under /fhir the OperationOutcome's first diagnostics."""
    body = response.json()
    return str(body["issue"][0]["diagnostics"] if body.get("resourceType") == "OperationOutcome" else body["detail"])


def send(world: World, route: Route, headers: dict[str, str]) -> httpx.Response:
    return world.http.request(headers=headers, **minimal_request(world, route))


def oidc_token(role: Role) -> str:
    return IDP_KEY.sign(claims([role.value], sub=f"matrix-{role.value}"))


# --- every route x every role ------------------------------------------------------

VALID = [(route, role, "api-token") for route in PROTECTED for role in ROLES] + [
    (route, role, "oidc") for route in PROTECTED for role in ROLES
]


@pytest.mark.parametrize(
    ("route", "role", "via"), VALID, ids=[f"{route_id(r)}-{role.value}-{via}" for r, role, via in VALID]
)
def test_each_role_is_served_or_refused_as_the_matrix_says(world: World, route: Route, role: Role, via: str) -> None:
    assert route in MATRIX, f"{route_id(route)} has no row in docs/roles.md"
    credential = world.tokens[role] if via == "api-token" else oidc_token(role)
    response = send(world, route, {"Authorization": f"Bearer {credential}"})
    if via == "oidc" and role is Role.EMITTER:
        # An identity provider cannot make anyone an emitter.
        assert response.status_code == 403, response.text
        assert "grants no auditsvc role" in detail(response)
    elif MATRIX[route][role] == "allowed":
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == 403, response.text
        assert "this endpoint needs the role" in detail(response)


# --- every route x every role x every bad credential -------------------------------

BAD = ("no token", "expired", "revoked", "malformed", "wrong scheme")
BAD_OIDC = ("expired jwt", "forged jwt", "alg none jwt")
REFUSED = [(route, role, case) for route in PROTECTED for role in ROLES for case in BAD] + [
    (route, role, case) for route in PROTECTED for role in HUMAN_ROLES for case in BAD_OIDC
]


def bad_headers(world: World, role: Role, case: str) -> dict[str, str]:
    token = world.tokens[role]
    now = int(datetime.now(UTC).timestamp())
    credentials = {
        "expired": f"Bearer {world.expired[role]}",
        "revoked": f"Bearer {world.revoked[role]}",
        "malformed": f"Bearer {token[:-1]}",
        "wrong scheme": f"Basic {token}",
        "expired jwt": f"Bearer {IDP_KEY.sign(claims([role.value], exp=now - 3600, iat=now - 7200))}",
        "forged jwt": f"Bearer {ROGUE_KEY.sign(claims([role.value]))}",
        "alg none jwt": f"Bearer {unsigned(claims([role.value]))}",
    }
    return {} if case == "no token" else {"Authorization": credentials[case]}


@pytest.mark.parametrize(
    ("route", "role", "case"), REFUSED, ids=[f"{route_id(r)}-{role.value}-{case}" for r, role, case in REFUSED]
)
def test_every_bad_credential_is_401_on_every_route(world: World, route: Route, role: Role, case: str) -> None:
    request = minimal_request(world, route)
    response = world.http.request(headers=bad_headers(world, role, case), **request)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert detail(response)
    if route == ("POST", "/v1/events"):
        refused_id = request["json"]["events"][0]["event_id"]
        assert not query(
            str(world.service.settings.database_url), "SELECT 1 FROM events WHERE event_id = $1", refused_id
        )


@pytest.mark.parametrize("route", PUBLIC, ids=[route_id(r) for r in PUBLIC])
def test_public_routes_need_no_credential_and_ignore_a_bad_one(world: World, route: Route) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {world.revoked[Role.ADMIN]}"},
    ):
        response = send(world, route, headers)
        assert response.status_code == 200, (headers, response.text)


# --- an emitter and its source systems ---------------------------------------------


def test_an_emitter_cannot_claim_a_source_system_it_is_not_bound_to(world: World) -> None:
    bound, other = event([PATIENT], source="epic-adt"), event([PATIENT], source="cerner-rad")
    before = world.stored_count()
    response = world.http.post(
        "/v1/events",
        json={"events": [bound, other]},
        headers={"Authorization": f"Bearer {world.tokens[Role.EMITTER]}"},
    )
    assert response.status_code == 403, response.text
    assert "events[1].source.system_id" in response.json()["detail"]
    assert "nothing was stored" in response.json()["detail"]
    assert world.stored_count() == before
    ids = [bound["event_id"], other["event_id"]]
    assert not query(
        str(world.service.settings.database_url), "SELECT 1 FROM events WHERE event_id = ANY($1::uuid[])", ids
    )
