"""The SDK where ``fcntl`` does not exist (Windows): importable, the offline
verifier (``auditsvc-verify``), the Merkle proof and signed-note modules and
the in-memory client all run; only a spool, which locks its directory with
``fcntl.flock``, is refused, with an error that says why.

Each check runs in a child interpreter in which ``import fcntl`` fails, as
it does on a platform without the module (``sys.modules["fcntl"] = None``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import REPO
from .test_evidence import LOG_KEY, WITNESS, middle_package

BLOCK_FCNTL = textwrap.dedent(
    """
    import sys
    sys.modules["fcntl"] = None  # import fcntl now raises ImportError
    try:
        import fcntl
    except ImportError:
        pass
    else:
        raise SystemExit("fcntl is not blocked")
    """
)


def _without_fcntl(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_FCNTL + textwrap.dedent(script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_auditsvc_verify_proves_a_package_without_fcntl(tmp_path: Path) -> None:
    _, package = middle_package()
    path = tmp_path / "evidence.tar.gz"
    path.write_bytes(package.build())
    script = """
    from auditsvc_sdk._verify_cli import main
    sys.exit(main(sys.argv[1:]))
    """
    proc = _without_fcntl(script, str(path), "--key", LOG_KEY.vkey, "--witness-key", WITNESS.verifier.vkey)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PROVEN: 8 events, seq 5..12")


def test_proof_note_and_chain_modules_run_without_fcntl() -> None:
    script = """
    import json
    from pathlib import Path
    from auditsvc_sdk import chain, merkle, note

    vectors = Path("tests/vectors")
    tree = json.loads((vectors / "merkle" / "rfc6962.json").read_text())
    leaves = [chain.leaf_hash(bytes.fromhex(x)) for x in tree["leaves"]]
    assert merkle.root_from_leaf_hashes(leaves).hex() == tree["roots"][str(len(leaves))]
    for case in tree["inclusion"]:
        proof = [bytes.fromhex(h) for h in case["proof"]]
        root = bytes.fromhex(tree["roots"][str(case["size"])])
        merkle.verify_inclusion(leaves[case["index"]], case["index"], case["size"], proof, root)

    go = json.loads((vectors / "note" / "sumdb-note.json").read_text())
    opened = note.open_note(go["text"] + "\\n" + go["peter_sig"], [note.NoteVerifier.from_vkey(go["peter"]["vkey"])])
    assert opened.text == go["text"]

    record = json.loads(Path("tests/vectors/chain-v1.json").read_text())["records"][0]
    assert chain.leaf_hash(record["leaf_bytes"].encode()).hex() == record["leaf_hash"]
    assert "fcntl" not in [name for name, mod in sys.modules.items() if mod is not None]
    print("ok")
    """
    proc = _without_fcntl(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_memory_client_works_and_a_spool_is_refused_clearly_without_fcntl(tmp_path: Path) -> None:
    script = """
    import httpx
    from auditsvc_sdk import AuditClient, SpoolUnsupported

    sent = []

    def answer(request):
        sent.append(request)
        return httpx.Response(200, json={"results": [{"status": "accepted", "seq": 0}], "head": {}})

    event = {
        "occurred_at": "2026-11-24T09:30:00Z", "action": "R", "event_type": "fhir-rest",
        "patient": {"identifiers": [{"system": "urn:oid:2.16.840.1.113883.3.1234.1.1", "value": "MRN-NOFCNTL"}]},
        "data_elements": ["Observation"], "source": {"system_id": "ehr"},
        "destination": {"system_id": "app"}, "actor": {"id": "user:x", "type": "user"},
    }
    with AuditClient("http://audit.test", "tok", transport=httpx.MockTransport(answer)) as client:
        client.record(event)
        assert client.flush(timeout=5)
    assert len(sent) == 1

    try:
        AuditClient("http://audit.test", "tok", spool_dir=sys.argv[1])
    except SpoolUnsupported as exc:
        print(exc)
    else:
        raise SystemExit("a spool was opened without fcntl")
    """
    proc = _without_fcntl(script, str(tmp_path / "spool"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fcntl" in proc.stdout and "spool_dir" in proc.stdout
