"""The system registry: entries recorded in the chain, read back through the
read model, only the service's own events trusted, bad input refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditsvc.domain.systems import REGISTRY_DESTINATION, registry_entries
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import Service, as_superuser, event, query, run_cli

LAB = {
    "name": "Acme Reference Lab",
    "organization": "Acme Diagnostics LLC",
    "address": "1 Lab Way, Springfield, IL 62701",
    "relationship": "business_associate",
    "baa": {"status": "on_file", "effective": "2024-01-01", "expires": "2027-12-31", "reference": "BAA-2024-017"},
}


def registry_events(service: Service) -> list[dict[str, Any]]:
    rows = query(
        str(service.settings.database_url),
        "SELECT e.record FROM events e JOIN event_facts f USING (log_id, seq) "
        "WHERE f.destination_system = $1 ORDER BY e.seq",
        REGISTRY_DESTINATION,
    )
    return [json.loads(r["record"]) for r in rows]


@pytest.fixture
def admin(service: Service) -> httpx.Client:
    return service.client(service.token(Role.ADMIN))


def test_an_entry_is_an_event_in_the_chain_and_reads_back(service: Service, admin: httpx.Client) -> None:
    put = admin.put("/v1/systems/acme-lab", json=LAB)
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["registered"] is True and stored["name"] == LAB["name"] and stored["baa"] == LAB["baa"]
    [record] = registry_events(service)
    assert record["source"]["system_id"] == "auditsvc"
    assert record["event_type"] == "system-registry-change"
    assert record["actor"]["role"] == "admin" and record["emitter"] == record["actor"]["id"]
    assert record["attributes"]["system_id"] == "acme-lab" and record["attributes"]["baa_reference"] == "BAA-2024-017"
    assert stored["recorded"]["seq"] == record["seq"]
    for role in (Role.PRIVACY_OFFICER, Role.AUDITOR):
        with service.client(service.token(role)) as reader:
            assert reader.get("/v1/systems/acme-lab").json() == stored
            assert reader.get("/v1/systems").json() == {"systems": [stored]}


def test_a_new_entry_replaces_the_old_and_an_identical_one_appends_nothing(
    service: Service, admin: httpx.Client
) -> None:
    admin.put("/v1/systems/acme-lab", json=LAB).raise_for_status()
    moved = {**LAB, "address": "2 New Road, Springfield, IL 62702"}
    assert admin.put("/v1/systems/acme-lab", json=moved).json()["address"] == moved["address"]
    assert admin.put("/v1/systems/acme-lab", json=moved).status_code == 200
    assert len(registry_events(service)) == 2
    listed = admin.get("/v1/systems").json()["systems"]
    assert [(e["system_id"], e["address"]) for e in listed] == [("acme-lab", moved["address"])]


def test_unregistered_ids_read_as_unregistered(service: Service, admin: httpx.Client) -> None:
    admin.put("/v1/systems/acme-lab", json=LAB).raise_for_status()
    answer = admin.get("/v1/systems/epic-adt")
    assert answer.status_code == 404, answer.text
    assert "epic-adt" not in answer.text  # a mistyped id is not echoed: it might be a patient's

    async def entries() -> dict[str, dict[str, Any]]:
        settings = service.settings
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            return await registry_entries(audit, ["acme-lab", "epic-adt", "acme-lab", "x/y@z"])

    found = asyncio.run(entries())
    assert list(found) == ["acme-lab", "epic-adt", "x/y@z"]
    assert found["acme-lab"]["registered"] and found["acme-lab"]["relationship"] == "business_associate"
    assert not found["epic-adt"]["registered"] and found["x/y@z"]["baa"] is None


def test_system_ids_with_a_slash_work_in_the_url(admin: httpx.Client) -> None:
    assert admin.put("/v1/systems/hie.example.org/fhir", json=LAB).status_code == 200
    assert admin.get("/v1/systems/hie.example.org/fhir").json()["registered"] is True


def test_an_emitter_cannot_forge_a_registry_entry(service: Service, admin: httpx.Client) -> None:
    admin.put("/v1/systems/acme-lab", json=LAB).raise_for_status()
    forged = event(
        [("urn:auditsvc:system", "acme-lab")],
        source="rogue-engine",
        destination=REGISTRY_DESTINATION,
        event_type="system-registry-change",
        attributes={"system_id": "acme-lab", "name": "Forged", "relationship": "workforce", "baa_status": "none"},
    )
    with service.client(service.token(Role.EMITTER, ["rogue-engine"])) as emitter:
        emitter.post("/v1/events", json={"events": [forged]}).raise_for_status()
    assert admin.get("/v1/systems/acme-lab").json()["name"] == LAB["name"]
    assert [e["name"] for e in admin.get("/v1/systems").json()["systems"]] == [LAB["name"]]


BAD_ENTRIES = [
    ({**LAB, "relationship": "friend"}, "relationship"),
    ({**LAB, "baa": {**LAB["baa"], "status": "maybe"}}, "status"),
    ({**LAB, "baa": {**LAB["baa"], "expires": "2023-12-31"}}, "'expires' is before 'effective'"),
    ({**LAB, "baa": {"status": "on_file"}}, "effective"),
    ({**LAB, "baa": {**LAB["baa"], "effective": "2024-02-30"}}, "effective"),
    ({**LAB, "baa": {**LAB["baa"], "effective": 1700000000}}, "effective"),
    ({**LAB, "name": "x" * 257}, "name"),
    ({**LAB, "address": "x" * 1025}, "address"),
    ({k: v for k, v in LAB.items() if k != "name"}, "name"),
    ({**LAB, "system_id": "other-lab"}, "system_id"),
    ({**LAB, "colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_ENTRIES)
def test_bad_entries_are_refused_naming_the_field(
    service: Service, admin: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = admin.put("/v1/systems/acme-lab", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert registry_events(service) == []


def test_a_bad_system_id_in_the_url_is_refused(admin: httpx.Client) -> None:
    response = admin.put("/v1/systems/-bad%20id", json=LAB)
    assert response.status_code == 422 and "system_id" in response.text


def test_only_admins_write_and_emitters_do_not_read(service: Service, admin: httpx.Client) -> None:
    for role in (Role.PRIVACY_OFFICER, Role.AUDITOR):
        with service.client(service.token(role)) as other:
            assert other.put("/v1/systems/acme-lab", json=LAB).status_code == 403
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as emitter:
        assert emitter.get("/v1/systems").status_code == 403
    with service.client() as anonymous:
        assert anonymous.get("/v1/systems/acme-lab").status_code == 401
    assert registry_events(service) == []


def test_a_registry_edit_in_the_database_is_caught_by_verify(service: Service, admin: httpx.Client) -> None:
    admin.put("/v1/systems/acme-lab", json=LAB).raise_for_status()
    url = str(service.settings.database_url)
    assert run_cli(service.settings, "verify").returncode == 0
    as_superuser(
        url,
        "UPDATE events SET record = replace(record, 'Acme Reference Lab', 'Acme Reference Lap') "
        "WHERE record LIKE '%system-registry-change%'",
    )
    assert admin.get("/v1/systems/acme-lab").json()["name"] == "Acme Reference Lap"  # read from the chain ...
    assert run_cli(service.settings, "verify").returncode == 1  # ... which verify finds altered


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "systems.csv"
    path.write_text(text, encoding="utf-8")
    return path


CSV_HEADER = "system_id,name,organization,address,relationship,baa_status,baa_effective,baa_expires,baa_reference\n"


def test_cli_import_reports_every_bad_row_and_imports_nothing(settings: Settings, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        CSV_HEADER
        + "acme-lab,Acme Lab,Acme,,business_associate,on_file,2024-01-01,2026-01-01,BAA-1\n"
        + "bad-rel,Bad,,,friend,none,,,\n"
        + "acme-lab,Again,,,workforce,not_required,,,\n"
        + 'multi,"Multi\nline",,,workforce,on_file,2025-01-01,2024-01-01,\n'
        + "ok-2,OK,,,workforce,none,,,\n",
    )
    result = run_cli(settings, "systems", "import", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    err = " ".join(result.stderr.split())
    assert "systems.csv:3: relationship" in err
    assert "systems.csv:4: system_id: already given on line 2" in err
    assert "systems.csv:5: baa: " in err and "'expires' is before 'effective'" in err
    assert "nothing was imported" in err
    listed = run_cli(settings, "systems", "list", "--json")
    assert json.loads(listed.stdout) == {"systems": []}


def test_cli_import_set_and_list(settings: Settings, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        CSV_HEADER
        + 'acme-lab,Acme Lab,Acme,"1 Lab Way, Springfield",business_associate,on_file,2024-01-01,,BAA-1\n'
        + "epic-adt,Epic ADT,General Hospital,,workforce,not_required,,,\n",
    )
    result = run_cli(settings, "systems", "import", str(path))
    assert result.returncode == 0, result.stderr
    result = run_cli(
        settings, "systems", "set", "state-registry", "--name", "State Immunization Registry",
        "--relationship", "external_recipient", "--baa-status", "not_required",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bad = run_cli(settings, "systems", "set", "x", "--name", "X", "--relationship", "pal", "--baa-status", "none")
    assert bad.returncode == 2 and "relationship" in bad.stderr
    systems = json.loads(run_cli(settings, "systems", "list", "--json").stdout)["systems"]
    assert [(s["system_id"], s["relationship"]) for s in systems] == [
        ("acme-lab", "business_associate"),
        ("epic-adt", "workforce"),
        ("state-registry", "external_recipient"),
    ]
    assert systems[0]["address"] == "1 Lab Way, Springfield" and systems[0]["recorded"]["by"].startswith("cli:")
