"""``auditsvc-sdk survey``: counts exact against a generated mixed corpus, and no value in any output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from auditsvc_sdk.survey import render_html, render_terminal, survey
from rich.console import Console

from tests.survey_corpus import Expected, generate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    directory = tmp_path_factory.mktemp("survey-corpus")
    return directory, generate(directory, messages=400, fhir=60, seed=18)


@pytest.fixture(scope="module")
def report(corpus: tuple[Path, Expected]) -> dict:
    directory, _ = corpus
    return survey([directory])


def test_inputs_are_counted_per_container_and_noise_by_cause(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    assert report["format"] == "auditsvc-survey/1"
    assert report["inputs"]["hl7v2_messages"] == e.hl7_messages == 400
    assert report["inputs"]["fhir_documents"] == e.fhir_documents == 60
    assert report["inputs"]["containers"] == dict(e.containers)
    assert report["inputs"]["unreadable"] == dict(e.unreadable)


def test_hl7_structure_counts_match_the_generator(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    h = report["hl7v2"]
    assert h["messages"] == e.hl7_messages
    assert h["naming_a_patient"] == e.naming_a_patient
    assert h["message_types"] == dict(e.message_types)
    assert h["versions"] == dict(e.versions)
    assert {k: v["messages"] for k, v in h["segments"].items()} == dict(e.segment_messages)
    assert {k: v["occurrences"] for k, v in h["segments"].items()} == dict(e.segment_occurrences)
    assert set(h["z_segments"]) == {s for s in e.segment_messages if s.startswith("Z")} == {"ZPD", "ZIN"}
    assert h["empty_pid_segments"] == e.empty_pid_segments > 0
    for row in h["field_fill"]:
        seg = row["field"].split("-")[0]
        assert (row["filled"], row["of"]) == (e.field_filled[row["field"]], e.with_segment[seg]), row["field"]


def test_message_times_offsets_and_the_zone_they_show(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    h = report["hl7v2"]
    assert h["message_time"] == dict(e.times)
    assert h["utc_offsets"] == dict(e.offsets)
    tz = next(r for r in report["recommendations"] if r["setting"] == "default_tz")
    # -0600 in January and -0500 in July: US Central time, and nothing else on the list fits both.
    assert tz["value"] == "America/Chicago"


def test_identifier_shapes_per_authority_and_placeholders(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    h = report["hl7v2"]
    got = {(r["field"], r["authority"], r["type"]): r["shapes"] for r in h["identifiers"]}
    assert got == {k: dict(v) for k, v in e.identifiers.items()}
    assert got[("PID-3", "MAINHOSP", "MR")] == {
        "A + 7 digits": e.identifiers[("PID-3", "MAINHOSP", "MR")]["A + 7 digits"]
    }
    assert h["placeholders"] == dict(e.placeholders)
    assert h["identifiers_without_authority_by_sender"] == dict(e.no_authority_by_sender)
    assert [r["values"] for r in h["shared_identifiers"]] == ([1] if e.shared_identifiers else [])
    placeholders = next(r for r in report["recommendations"] if r["setting"] == "placeholders")
    assert placeholders["value"] == dict(e.placeholders)


def test_fhir_counts_match_the_generator(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    f = report["fhir"]
    assert f["documents"] == e.fhir_documents
    assert f["naming_a_patient"] == e.fhir_naming_a_patient
    assert f["top_level_types"] == dict(e.fhir_top_level)
    got = {(r["system"], r["in"]): r["shapes"] for r in f["identifiers"]}
    assert got == {k: dict(v) for k, v in e.fhir_identifiers.items()}
    assert f["identifiers_without_value"] == dict(e.fhir_identifiers_without_value)
    assert f["resources_inside_parameters"] == e.fhir_resources_inside_parameters
    assert f["with_byte_order_mark"] == e.fhir_with_bom == 1


def test_no_identifier_name_or_birth_date_in_any_output(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    console = Console(file=io.StringIO(), width=200, record=True)
    render_terminal(report, console)
    outputs = {"json": json.dumps(report), "html": render_html(report), "terminal": console.export_text()}
    assert len(e.secrets) > 1000
    for name, text in outputs.items():
        leaked = sorted(s for s in e.secrets if s in text)
        assert not leaked, f"{len(leaked)} values in the {name} output"
    # The shapes are there instead.
    assert "A + 7 digits" in outputs["html"] and "A + 7 digits" in outputs["terminal"]


def test_html_is_self_contained(report: dict) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page


def test_cli_writes_json_and_html_and_a_terminal_report(
    corpus: tuple[Path, Expected], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditsvc_sdk._survey_cli import main

    directory, e = corpus
    out_json, out_html = tmp_path / "s.json", tmp_path / "s.html"
    code = main(
        ["survey", str(directory), "--json", str(out_json), "--html", str(out_html), "--default-tz", "America/Chicago"]
    )
    assert code == 0
    data = json.loads(out_json.read_text())
    assert data["hl7v2"]["messages"] == e.hl7_messages
    assert data["settings"]["default_tz"] == "America/Chicago"
    assert "Pre-go-live traffic survey" in out_html.read_text()
    terminal = capsys.readouterr().out
    assert "Recommended helper settings" in terminal
    assert not [s for s in e.secrets if s in terminal]


def test_cli_refuses_a_missing_path_and_an_unknown_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from auditsvc_sdk._survey_cli import main

    assert main(["survey", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["survey", str(tmp_path), "--default-tz", "Mars/Olympus"]) == 2
    assert "not an IANA time zone" in capsys.readouterr().err


def test_committed_corpus_is_the_generators_output(tmp_path: Path) -> None:
    committed = REPO / "tests" / "corpus" / "survey"
    generate(tmp_path, messages=400, fhir=60, seed=18)
    ours = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert ours == theirs
    for rel in ours:
        assert (tmp_path / rel).read_bytes() == (committed / rel).read_bytes(), rel


def test_helper_outcomes_account_for_every_message(report: dict, corpus: tuple[Path, Expected]) -> None:
    _, e = corpus
    y = report["helpers"]["hl7v2"]
    assert y["inputs"] == e.hl7_messages and y["naming_a_patient"] == e.naming_a_patient
    assert {k: v["inputs"] for k, v in y["by_type"].items()} == dict(e.message_types)
    # Best effort: every message that names a patient yields an event (one patient each here), and only
    # the ACKs and master-file updates, which name nobody, are refused, for that cause.
    assert y["with_events"] == y["events"] == e.naming_a_patient
    assert y["naming_a_patient_without_event"] == 0
    assert y["refusals"] == {"no_patient": e.message_types["ACK"] + e.message_types["MFN^M02"]}
    for kind in ("ACK", "MFN^M02"):
        assert y["by_type"][kind]["with_events"] == 0
        assert y["by_type"][kind]["refusals"] == {"no_patient": e.message_types[kind]}
    # At most one placeholder per message in the corpus: one flagged event per placeholder.
    assert y["assumptions"]["placeholder_identifier"] == sum(e.placeholders.values())
    assert y["assumptions"]["authority_unknown"] == e.no_authority_by_sender["(none)"]
    f = report["helpers"]["fhir"]
    assert f["inputs"] == e.fhir_documents
    assert f["with_events"] == f["events"] == e.fhir_naming_a_patient
    assert f["naming_a_patient_without_event"] == 0
    assert f["refusals"] == {"no_patient": e.fhir_top_level["CapabilityStatement"]}
    # A masked identifier is skipped and flagged, not a refusal; relative references without fhir_base
    # are qualified by the source system and flagged (one Observation document each).
    assert f["assumptions"]["identifier_without_value"] == sum(e.fhir_identifiers_without_value.values())
    assert f["assumptions"]["base_from_source"] == e.fhir_top_level["Observation"]


def test_fhir_base_given_resolves_relative_references(corpus: tuple[Path, Expected]) -> None:
    directory, e = corpus
    with_base = survey([directory / "fhir"], fhir_base="https://fhir.example.org/r4")
    f = with_base["helpers"]["fhir"]
    assert "base_from_source" not in f["assumptions"]
    assert f["with_events"] == e.fhir_naming_a_patient
    assert not [r for r in with_base["recommendations"] if r["setting"] == "fhir_base"]


def test_settings_given_are_used_by_the_helpers(corpus: tuple[Path, Expected]) -> None:
    directory, _ = corpus
    hl7 = directory / "hl7"
    without = survey([hl7])
    with_tz = survey([hl7], default_tz="America/Chicago", placeholders=["NOSSN"], systems={"MAINHOSP": "urn:oid:1.2.3"})
    assert with_tz["settings"]["default_tz"] == "America/Chicago"
    assert with_tz["helpers"]["hl7v2"]["with_events"] >= without["helpers"]["hl7v2"]["with_events"]
    rows = next(r for r in with_tz["recommendations"] if r["setting"] == "identifier_systems")["value"]
    assert {r["from"]: r["maps_to"] for r in rows}["PID-3 MAINHOSP ^MR"] == "urn:oid:1.2.3"
