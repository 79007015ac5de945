"""The console's patient page over HTTP: the search never puts the
identifier in a URL, the report and its filters, the event page, exports
that are the API's own answers, and every read recorded in the chain."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import pytest
from pypdf import PdfReader

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query
from .console_support import csrf_of, module_service, sign_in, token

pytestmark = pytest.mark.db

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-CONSOLE-0042")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-CONSOLE-0042")
SOURCES = ["epic-adt", "lab-lis", "fhir-gateway"]


def _events() -> list[dict[str, object]]:
    day = "2026-11-{:02d}T10:00:00.000000+00:00"
    found = [event([MRN, EMPI], source="epic-adt", destination="lab-lis", occurred_at=day.format(d)) for d in (2, 3, 4)]
    found.append(event([EMPI], source="lab-lis", destination="epic-adt", occurred_at=day.format(5), action="C"))
    found.append(
        event(
            [MRN],
            source="fhir-gateway",
            destination="ed-tracker",
            occurred_at=day.format(6),
            event_type="break-glass",
            purpose_of_use="ETREAT",
        )
    )
    found.append(event([MRN], source="fhir-gateway", destination="billing", occurred_at=day.format(7), outcome=4))
    return found


SEEDED = _events()


@pytest.fixture(scope="module")
def service(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with module_service(server_url, template_db, tmp_path_factory.mktemp("console-patient") / "data") as running:
        emitter = token(running, Role.EMITTER, systems=SOURCES)
        answer = httpx.post(
            f"{running.url}/v1/events", json={"events": SEEDED}, headers={"Authorization": f"Bearer {emitter}"}
        )
        assert answer.status_code == 200, answer.text
        yield running


@pytest.fixture(scope="module")
def officer(service: Service) -> tuple[httpx.Client, str]:
    credential = token(service, Role.PRIVACY_OFFICER, name="Console Officer (synthetic)")
    client, _ = sign_in(service, credential)
    return client, credential


def search(client: httpx.Client, identifier: tuple[str, str]) -> str:
    """POST the search form; the report's address (opaque)."""
    form = client.get("/patient")
    answer = client.post(
        "/patient", data={"csrf_token": csrf_of(form), "system": identifier[0], "value": identifier[1]}
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def reads_by(service: Service, token_id: str) -> list[str]:
    rows = query(
        str(service.settings.database_url),
        "SELECT e.record::jsonb -> 'attributes' ->> 'query' AS q FROM event_facts f JOIN events e USING (log_id, seq) "
        "WHERE f.event_type = 'audit-log-query' AND f.actor_id = $1 ORDER BY f.seq",
        token_id,
    )
    return [r["q"] for r in rows]


def test_the_search_form_lists_the_identifier_systems_seen(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    page = client.get("/patient")
    assert page.status_code == 200
    assert f'<option value="{MRN[0]}">' in page.text and f'<option value="{EMPI[0]}">' in page.text
    assert MRN[1] not in page.text  # systems, never values


def test_a_search_by_a_linked_identifier_reports_every_system_and_keeps_phi_out_of_the_url(
    service: Service, officer: tuple[httpx.Client, str]
) -> None:
    client, credential = officer
    before = reads_by(service, credential.split("_")[1])
    location = search(client, EMPI)
    assert location.startswith("/patient/r/") and EMPI[1] not in location and MRN[1] not in location
    page = client.get(location)
    assert page.status_code == 200
    assert MRN[1] in page.text and EMPI[1] in page.text  # the linked identifiers are shown
    for system in ("epic-adt", "lab-lis", "fhir-gateway", "ed-tracker", "billing"):
        assert f">{system}</th>" in page.text
    assert '<svg class="chart"' in page.text and page.text.count('<rect class="bar"') >= 6
    assert "break-glass</span>" in page.text
    after = reads_by(service, credential.split("_")[1])
    assert after[len(before) :] == ["patient-access-report"]  # the view is recorded in the chain


def test_filters_narrow_the_systems_the_chart_and_the_events(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    location = search(client, MRN)
    glass = client.get(location, params={"break_glass": "1"})
    assert glass.status_code == 200
    assert ">ed-tracker</th>" in glass.text and ">lab-lis</th>" not in glass.text
    assert glass.text.count("/events/") == 1
    failed = client.get(location, params={"outcome": "4"})
    assert ">billing</th>" in failed.text and failed.text.count("/events/") == 1
    created = client.get(location, params={"action": "C", "system": "lab-lis"})
    assert created.text.count("/events/") == 1
    period = client.get(location, params={"from": "2026-11-03", "to": "2026-11-04"})
    assert period.text.count("/events/") == 2
    none = client.get(location, params={"system": "no-such-system"})
    assert "No accesses found" in none.text


def test_paging_follows_the_reports_cursor(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    location = search(client, MRN)
    first = client.get(location, params={"size": "25"})
    assert first.status_code == 200 and 'rel="next"' not in first.text  # six events fit one page


def test_bad_filters_are_refused_naming_the_parameter_not_the_value(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    location = search(client, MRN)
    bad = client.get(location, params={"outcome": "7", "action": "Z<script>"})
    assert bad.status_code == 422
    assert "outcome" in bad.text and "action" in bad.text and "Z<script>" not in bad.text
    bad_date = client.get(location, params={"from": "yesterday"})
    assert bad_date.status_code == 422 and "from" in bad_date.text
    bad_cursor = client.get(location, params={"cursor": "abc"})
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text


def test_a_search_belongs_to_its_session(service: Service, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    location = search(client, MRN)
    other, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    answer = other.get(location)
    assert answer.status_code == 404 and MRN[1] not in answer.text


def test_an_identifier_too_long_is_refused_with_the_field_named(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    form = client.get("/patient")
    answer = client.post("/patient", data={"csrf_token": csrf_of(form), "system": MRN[0], "value": "V" * 500})
    assert answer.status_code == 422 and "Identifier value" in answer.text and "V" * 500 not in answer.text


def test_the_event_page_shows_the_record_and_its_hashes(service: Service, officer: tuple[httpx.Client, str]) -> None:
    client, credential = officer
    target = SEEDED[4]
    page = client.get(f"/events/{target['event_id']}")
    assert page.status_code == 200
    assert "ETREAT" in page.text and "Leaf hash" in page.text and "Chain hash" in page.text
    assert MRN[1] in page.text  # a privacy officer sees the identifiers opened
    assert reads_by(service, credential.split("_")[1])[-1] == "event-read"
    assert client.get("/events/not-a-uuid").status_code == 404


def test_exports_are_the_apis_answers_and_are_recorded(service: Service, officer: tuple[httpx.Client, str]) -> None:
    client, credential = officer
    location = search(client, EMPI)
    before = reads_by(service, credential.split("_")[1])
    exported = client.get(f"{location}/export.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    api = httpx.post(
        f"{service.url}/v1/reports/patient-access?format=csv",
        json={"identifier": {"system": EMPI[0], "value": EMPI[1]}},
        headers={"Authorization": f"Bearer {credential}"},
    )
    # The same bytes, but for one more row: the console export's own read,
    # recorded in the chain (with the patient as subject) before the API's.
    assert api.content.startswith(exported.content)
    extra = list(csv.reader(io.StringIO(api.text[len(exported.text) :])))
    assert len(extra) == 1 and extra[0][4] == "audit-log-query"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["event_id"] for r in rows} >= {str(e["event_id"]) for e in SEEDED}
    pdf = client.get(f"{location}/export.pdf", params={"from": "2026-11-01", "to": "2026-11-30"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "ed-tracker" in text and EMPI[1] in text
    recorded = reads_by(service, credential.split("_")[1])[len(before) :]
    assert recorded.count("patient-access-report") >= 3  # the CSV, the API's CSV, the PDF's pages
