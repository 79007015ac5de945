"""The share of patient-naming inputs that the HL7 v2 and FHIR helpers turn into events.

    python -m tests.helper_coverage [--sdk DIR] [--json]

Two corpora, each input called as a channel would:

* ``best_effort``: ``tests/corpus/{hl7v2,fhir}/best_effort``, one input per
  failure mode of issue 18, called with the MANIFEST's ``args``;
* ``readme``: the vendor-shaped corpus ``tests/corpus/{hl7v2,fhir}/*``,
  called as the SDK README's example used to (``actor`` and ``destination``
  only: no ``default_tz``, no ``source``).

An input counts as audited when it yields at least one event; ``patients``
counts events against the number the input names (a batch names several).
``--sdk DIR`` puts another checkout's ``sdk`` directory first on the path,
to measure an older SDK (which has only ``events_from_hl7v2`` and
``events_from_fhir``, raising on refusal): e.g. ``git worktree add /tmp/old
<commit>`` then ``--sdk /tmp/old/sdk``. Prints counts only, no PHI.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
CHANNEL = {"id": "mirth/ADT-IN", "type": "system"}


def _events(sdk: Any, kind: str, data: bytes, args: dict[str, Any]) -> int:
    """How many events the SDK makes of ``data``; 0 when it refuses the input."""
    if kind == "hl7v2":
        call = {"actor": CHANNEL, "destination": "lab-lis", **args}
        reader, old = "read_hl7v2", "events_from_hl7v2"
    else:
        call = {"actor": CHANNEL, "source": "epic-fhir", "destination": "care-app", **args}
        reader, old = "read_fhir", "events_from_fhir"
    helpers = getattr(sdk, "helpers", None) if (Path(sdk.__file__).parent / "helpers.py").exists() else None
    if helpers is not None:
        return len(getattr(helpers, reader)(data, **call).events)
    try:
        return len(getattr(sdk, old)(data, **call))
    except ValueError:  # HL7v2Error / FHIRError: refused
        return 0


def _inputs(corpus: str) -> list[tuple[str, str, bytes, dict[str, Any], int]]:
    """(kind, name, bytes, args, patients named) of every patient-naming input of a corpus."""
    out = []
    for kind in ("hl7v2", "fhir"):
        if corpus == "best_effort":
            folder = CORPUS / kind / "best_effort"
            manifest = json.loads((folder / "MANIFEST.json").read_text())
            for entry in manifest["inputs"]:
                if entry["names_patient"]:
                    data = (folder / entry["file"]).read_bytes()
                    out.append((kind, entry["file"], data, entry["args"], len(entry["expected"]["events"])))
        elif kind == "hl7v2":
            for path in sorted((CORPUS / kind).glob("*.hl7")):
                expected = json.loads(path.with_suffix(".json").read_text())["expected"]
                out.append((kind, path.name, path.read_bytes(), {}, len(expected["events"])))
        else:
            for name, patients in sorted(_fhir_expected_patients().items()):
                if patients:
                    out.append((kind, name, (CORPUS / kind / name).read_bytes(), {}, patients))
    return out


def _fhir_expected_patients() -> dict[str, int]:
    """file -> patients named, read from test_fhir.EXPECTED's source (importing it needs the new SDK)."""
    tree = ast.parse((Path(__file__).parent / "test_fhir.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "EXPECTED":
            assert isinstance(node.value, ast.Dict)
            counts = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(key, ast.Constant) and isinstance(value, ast.Tuple)
                patients = value.elts[1]
                assert isinstance(patients, ast.List)
                counts[key.value] = len(patients.elts)
            return counts
    raise AssertionError("test_fhir.EXPECTED not found")


def measure(sdk: Any) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for corpus in ("best_effort", "readme"):
        for kind in ("hl7v2", "fhir"):
            rows = [row for row in _inputs(corpus) if row[0] == kind]
            made = [(_events(sdk, kind, data, args), named) for _, _, data, args, named in rows]
            audited = sum(1 for n, _ in made if n > 0)
            report[f"{corpus}/{kind}"] = {
                "inputs_naming_a_patient": len(rows),
                "inputs_audited": audited,
                "share_audited": round(audited / len(rows), 3) if rows else None,
                "patients_named": sum(named for _, named in made),
                "patients_with_an_event": sum(min(n, named) for n, named in made),
                "not_audited": [name for (_, name, *_), (n, _) in zip(rows, made, strict=True) if n == 0],
            }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdk", type=Path, help="an sdk/ directory to import auditsvc_sdk from")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args(argv)
    if ns.sdk is not None:
        sys.path.insert(0, str(ns.sdk.resolve()))
    sdk = importlib.import_module("auditsvc_sdk")
    if (Path(sdk.__file__).parent / "helpers.py").exists():
        importlib.import_module("auditsvc_sdk.helpers")
    report = measure(sdk)
    if ns.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"auditsvc_sdk from {Path(sdk.__file__).parent}")
    for key, row in report.items():
        print(
            f"{key:20} {row['inputs_audited']:3}/{row['inputs_naming_a_patient']:<3} inputs audited "
            f"({row['share_audited']:.0%}), {row['patients_with_an_event']}/{row['patients_named']} patients"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
