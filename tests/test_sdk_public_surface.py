"""The SDK's public surface: what the service, bench and auditors import.

The service imports no private SDK module (``auditsvc_sdk._x``); what it
needs is named here, so a rename in the SDK breaks this test first rather
than the service at run time.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PUBLIC = {
    "auditsvc_sdk.chain": [
        "CHAIN_TAG",
        "FORMAT_VERSION",
        "GENESIS_TAG",
        "SEALED_RECORD_VERSION",
        "SUPPORTED_VERSIONS",
        "RecordTemplate",
        "UnsupportedFormatVersion",
        "canonical_json",
        "canonical_record",
        "chain_hash",
        "check_format_version",
        "format_timestamp",
        "genesis_hash",
        "leaf_hash",
        "make_record",
    ],
    "auditsvc_sdk.helpers": [
        "ASSUMED_ATTRIBUTE",
        "DEFAULT_PLACEHOLDERS",
        "DEFAULT_SYSTEMS",
        "DEFAULT_TYPE_SYSTEMS",
        "STATE_DL_OIDS",
        "UNLINKED_SYSTEM",
        "US_MBI",
        "US_MEDICARE_HICN",
        "US_NPI",
        "US_SSN",
        "Assumed",
        "Cause",
        "FHIRError",
        "HL7v2Error",
        "HelperResult",
        "IdentifierPolicy",
        "Refusal",
        "assumed_codes",
        "events_from_fhir",
        "events_from_hl7v2",
        "parse_hl7_timestamp",
        "read_fhir",
        "read_hl7v2",
    ],
    "auditsvc_sdk.merkle": [
        "EMPTY_ROOT",
        "CompactRange",
        "NodeID",
        "ProofError",
        "ProofLengthError",
        "RootMismatchError",
        "consistency_nodes",
        "frontier_nodes",
        "inclusion_nodes",
        "root_from_leaf_hashes",
        "verify_consistency",
        "verify_inclusion",
    ],
    "auditsvc_sdk.note": [
        "Checkpoint",
        "CosignatureSigner",
        "CosignatureVerifier",
        "NoteError",
        "NoteSignature",
        "NoteSigner",
        "NoteVerifier",
        "open_checkpoint",
        "open_note",
        "sign_note",
        "verifier_from_vkey",
        "verify_cosignature",
    ],
    "auditsvc_sdk.survey": [
        "FORMAT",
        "Item",
        "Survey",
        "SurveySettings",
        "Unreadable",
        "read_paths",
        "render_html",
        "render_terminal",
        "survey",
    ],
    "auditsvc_sdk.wire": ["NO_NUL_PATTERN", "WireEvent", "parse_event_batch", "wire_event"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_module_exports_exactly_its_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name), name
    assert mod.__doc__, f"{module} documents itself"


def test_service_and_bench_import_no_private_sdk_module() -> None:
    offenders = []
    for path in [*(REPO / "auditsvc").rglob("*.py"), *(REPO / "bench").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "auditsvc_sdk" and any(p.startswith("_") for p in parts[1:]):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []
