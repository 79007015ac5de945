"""The FHIR HTTP layer (api/fhir_http.py): errors under /fhir are
OperationOutcome resources whatever raised them, answers are
application/fhir+json, and only JSON is served (406 for XML)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from fastapi import Depends
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from auditsvc.api.app import create_app
from auditsvc.api.deps import require
from auditsvc.api.fhir_http import FhirError
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .fhir_facade import Facade, facade, module_settings, role_tokens

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def settings_and_tokens(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[Role, str]]]:
    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-http")):
        yield settings, role_tokens(settings)


@pytest_asyncio.fixture(scope="module")
async def api(settings_and_tokens: tuple[Settings, dict[Role, str]]) -> AsyncIterator[Facade]:
    settings, tokens = settings_and_tokens
    app = create_app(settings, runtime_url(settings))

    # Probes of the error paths a FHIR route can take (the real routes raise them too).
    @app.get("/fhir/_probe", dependencies=[Depends(require(Role.AUDITOR))])
    async def probe(kind: str) -> dict[str, str]:
        if kind == "fhir-error":
            raise FhirError(400, "invalid", "unknown search parameter", ["patient.name"])
        raise RuntimeError("MRN-SECRET-0001 in an unexpected error")

    async with facade(settings, tokens, app) as running:
        yield running


def outcome(response) -> OperationOutcome:
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8", response.headers
    return OperationOutcome.model_validate(response.json())


async def test_metadata_is_a_capability_statement_served_without_a_token(api: Facade) -> None:
    response = await api.http.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    assert statement.instantiates == [
        "https://profiles.ihe.net/ITI/BALP/CapabilityStatement/IHE.BALP.ATNA.AuditRecordRepository"
    ]
    [rest] = statement.rest
    [resource] = rest.resource
    assert resource.type == "AuditEvent"
    assert {i.code for i in resource.interaction} == {"read", "search-type", "create"}
    assert {i.code for i in rest.interaction} == {"batch", "transaction"}
    params = {p.name: p.type for p in resource.searchParam}
    assert params["date"] == "date" and params["patient.identifier"] == "token" and params["address"] == "string"


@pytest.mark.parametrize(
    ("params", "headers", "media_type"),
    [
        ({"_format": "json"}, {}, "application/fhir+json"),
        ({"_format": "application/fhir+json"}, {}, "application/fhir+json"),
        ({"_format": "application/json"}, {}, "application/json"),
        ({}, {"Accept": "application/json"}, "application/json"),
        ({}, {"Accept": "application/json+fhir"}, "application/fhir+json"),
        ({}, {"Accept": "text/html, */*;q=0.8"}, "application/fhir+json"),
    ],
)
async def test_json_is_answered_in_the_type_asked_for(api: Facade, params, headers, media_type) -> None:
    response = await api.http.get("/fhir/metadata", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"


@pytest.mark.parametrize(
    ("params", "headers", "expression"),
    [
        ({"_format": "xml"}, {}, ["_format"]),
        ({"_format": "application/fhir+xml"}, {}, ["_format"]),
        ({"_format": "turtle"}, {}, ["_format"]),
        ({}, {"Accept": "application/fhir+xml"}, None),
    ],
)
async def test_xml_and_other_formats_are_refused_with_406(api: Facade, params, headers, expression) -> None:
    response = await api.http.get("/fhir/metadata", params=params, headers=headers)
    assert response.status_code == 406
    [issue] = outcome(response).issue
    assert issue.code == "not-supported"
    assert "only JSON" in issue.diagnostics
    assert issue.expression == expression


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/fhir/Patient", 404, "not-found"),
        ("DELETE", "/fhir/metadata", 405, "not-supported"),
        ("GET", "/fhir/_probe?kind=fhir-error", 401, "login"),
    ],
)
async def test_framework_errors_under_fhir_are_operation_outcomes(api: Facade, method, path, status, code) -> None:
    response = await api.http.request(method, path)
    assert response.status_code == status
    [issue] = outcome(response).issue
    assert issue.code == code and issue.severity == "error"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_wrong_role_gets_403_as_an_operation_outcome(api: Facade) -> None:
    response = await api.http.get("/fhir/_probe", params={"kind": "x"}, headers=api.auth(Role.EMITTER))
    assert response.status_code == 403
    [issue] = outcome(response).issue
    assert issue.code == "forbidden" and "needs the role auditor" in issue.diagnostics


async def test_validation_errors_name_the_parameter(api: Facade) -> None:
    response = await api.http.get("/fhir/_probe", headers=api.auth(Role.AUDITOR))
    assert response.status_code == 422
    issues = outcome(response).issue
    assert issues[0].code == "processing"
    assert [i.expression for i in issues[1:]] == [["kind"]]


async def test_a_fhir_error_is_answered_with_its_status_and_expression(api: Facade) -> None:
    response = await api.http.get("/fhir/_probe", params={"kind": "fhir-error"}, headers=api.auth(Role.AUDITOR))
    assert response.status_code == 400
    [issue] = outcome(response).issue
    assert (issue.code, issue.diagnostics, issue.expression) == (
        "invalid",
        "unknown search parameter",
        ["patient.name"],
    )


async def test_an_unexpected_error_is_a_500_outcome_that_quotes_nothing(api: Facade) -> None:
    response = await api.http.get("/fhir/_probe", params={"kind": "boom"}, headers=api.auth(Role.AUDITOR))
    assert response.status_code == 500
    [issue] = outcome(response).issue
    assert (issue.severity, issue.code, issue.diagnostics) == ("fatal", "exception", "internal error")
    assert "MRN-SECRET" not in response.text


async def test_errors_outside_fhir_keep_the_service_shape(api: Facade) -> None:
    response = await api.http.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Not Found"}
