"""Merkle proofs, signed checkpoints and their publication, against the real
service and PostgreSQL: every proof verifies with the SDK's pure functions
against a checkpoint checked with the log's verifier key; the service never
signs a checkpoint inconsistent with an earlier one; checkpoints leave the
database (directory, webhook, a C2SP witness); and ``verify`` uses them to
find what the rows alone cannot show."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from auditsvc_sdk import canonical_json, chain_hash, genesis_hash, leaf_hash
from auditsvc_sdk._merkle import root_from_leaf_hashes, verify_consistency, verify_inclusion
from auditsvc_sdk._note import (
    Checkpoint,
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_note,
    verify_cosignature,
)

from auditsvc.domain.checkpointer import Checkpointer
from auditsvc.domain.tokens import Role
from auditsvc.domain.tree import inclusion_proof
from auditsvc.settings import Settings, WitnessConfig
from auditsvc.store.engine import asyncpg_dsn, runtime_url

from .conftest import Service, as_superuser, event, query, run_cli, running_service
from .witness import start_witness


def append(service: Service, count: int, batch: int = 1000) -> None:
    token = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(token) as client:
        for start in range(0, count, batch):
            events = [event([("urn:oid:1.2.3", f"MRN-CP-{i}")]) for i in range(start, min(count, start + batch))]
            client.post("/v1/events", json={"events": events}).raise_for_status()


def sign_now(service: Service) -> str:
    with service.client(service.token(Role.ADMIN)) as admin:
        response = admin.post("/v1/checkpoints")
    response.raise_for_status()
    return response.text


def log_verifier(service: Service) -> NoteVerifier:
    with service.client(service.token(Role.AUDITOR)) as auditor:
        return NoteVerifier.from_vkey(auditor.get("/v1/checkpoints/verifier-key").text.strip())


def verify_json(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(settings, "verify", "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def superuser(settings: Settings, *statements: str) -> None:
    as_superuser(str(settings.database_url), *statements)


# --- proofs ----------------------------------------------------------------------


def test_every_event_of_a_10000_event_log_is_proven_in_the_latest_checkpoint(service: Service) -> None:
    append(service, 10_000)
    note = sign_now(service)
    checkpoint, _ = open_checkpoint(note, [log_verifier(service)], origin=service.settings.log_name)
    assert checkpoint.size == 10_000

    async def _all() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(runtime_url(service.settings)))
        try:
            log_id = await conn.fetchval("SELECT log_id FROM logs")
            for seq in range(checkpoint.size):
                leaf, proof = await inclusion_proof(conn, log_id, seq, checkpoint.size)
                verify_inclusion(leaf, seq, checkpoint.size, proof, checkpoint.root_hash)
            return checkpoint.size
        finally:
            await conn.close()

    assert asyncio.run(_all()) == 10_000
    # And over HTTP, for a spread of seqs including both ends and block edges.
    with service.client(service.token(Role.AUDITOR)) as auditor:
        for seq in (0, 1, 255, 256, 257, 4095, 4096, 5000, 9727, 9728, 9998, 9999):
            body = auditor.get("/v1/proofs/inclusion", params={"seq": seq, "tree_size": 10_000}).json()
            assert body["seq"] == seq and body["tree_size"] == 10_000
            verify_inclusion(
                bytes.fromhex(body["leaf_hash"]),
                seq,
                10_000,
                [bytes.fromhex(h) for h in body["hashes"]],
                checkpoint.root_hash,
            )
        record = auditor.get("/v1/proofs/inclusion", params={"seq": 42}).json()  # default: latest checkpoint
        assert record["tree_size"] == 10_000


def test_consistency_proofs_between_checkpoints_verify(service: Service) -> None:
    notes = []
    for count in (1, 6, 250, 7, 300, 1):  # sizes 1, 7, 257, 264, 564, 565: inside, at and across blocks
        append(service, count)
        notes.append(sign_now(service))
    verifier = log_verifier(service)
    checkpoints = [open_checkpoint(n, [verifier])[0] for n in notes]
    with service.client(service.token(Role.AUDITOR)) as auditor:
        for old in checkpoints:
            for new in checkpoints:
                if old.size > new.size:
                    continue
                body = auditor.get("/v1/proofs/consistency", params={"first": old.size, "second": new.size}).json()
                proof = [bytes.fromhex(h) for h in body["hashes"]]
                verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
        assert auditor.get("/v1/checkpoints/latest").text == notes[-1]
        assert auditor.get(f"/v1/checkpoints/{checkpoints[1].size}").text == notes[1]


def test_proof_requests_outside_the_log_are_refused_clearly(service: Service) -> None:
    append(service, 10)
    sign_now(service)
    with service.client(service.token(Role.AUDITOR)) as auditor:
        too_big = auditor.get("/v1/proofs/inclusion", params={"seq": 3, "tree_size": 11})
        assert too_big.status_code == 422 and "larger than the log" in too_big.json()["detail"]
        past = auditor.get("/v1/proofs/inclusion", params={"seq": 10, "tree_size": 10})
        assert past.status_code == 422 and "seq 10" in past.json()["detail"]
        backwards = auditor.get("/v1/proofs/consistency", params={"first": 9, "second": 5})
        assert backwards.status_code == 422
        assert auditor.get("/v1/proofs/inclusion", params={"seq": -1}).status_code == 422
        assert auditor.get("/v1/checkpoints/12345").status_code == 404


def test_checkpoint_and_proof_endpoints_need_the_auditor_role(service: Service) -> None:
    append(service, 3)
    sign_now(service)
    paths = [
        "/v1/checkpoints/latest",
        "/v1/checkpoints/verifier-key",
        "/v1/checkpoints/verifier-keys",
        "/v1/proofs/inclusion?seq=0&tree_size=3",
        "/v1/proofs/consistency?first=1&second=3",
    ]
    for role in (Role.EMITTER, Role.PRIVACY_OFFICER, Role.ADMIN):
        with service.client(service.token(role, ["epic-adt"] if role is Role.EMITTER else None)) as client:
            for path in paths:
                assert client.get(path).status_code == 403, (role, path)
    with service.client() as anonymous:
        for path in paths:
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/v1/checkpoints").status_code == 401
    with service.client(service.token(Role.AUDITOR)) as auditor:
        assert auditor.post("/v1/checkpoints").status_code == 403


# --- making checkpoints --------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def checkpoint_sizes(settings: Settings) -> list[int]:
    return [r["tree_size"] for r in query(str(settings.database_url), "SELECT tree_size FROM checkpoints ORDER BY 1")]


def quick_checkpointer(service: Service) -> Checkpointer:
    """The running service's checkpointer, polling every 50 ms."""
    checkpointer: Checkpointer = service.app.state.audit.checkpointer
    checkpointer.poll = 0.05
    return checkpointer


def a_whole_round_ran(checkpointer: Checkpointer) -> None:
    """Until one round started and ended after this call (the one under way may predate it)."""
    seen = checkpointer.rounds
    wait_for(lambda: checkpointer.rounds >= seen + 2)


def test_checkpoints_are_made_every_n_events_and_every_t_seconds(settings: Settings) -> None:
    by_count = settings.model_copy(update={"checkpoint_every_events": 100, "checkpoint_interval_seconds": 3600})
    with running_service(by_count) as service:
        checkpointer = quick_checkpointer(service)
        wait_for(lambda: checkpoint_sizes(settings) == [0])  # the empty log, signed at start
        append(service, 99)
        a_whole_round_ran(checkpointer)
        assert checkpoint_sizes(settings) == [0]  # 99 < 100 and the hour has not passed
        append(service, 1)
        wait_for(lambda: checkpoint_sizes(settings) == [0, 100])
    by_time = settings.model_copy(update={"checkpoint_every_events": 10**9, "checkpoint_interval_seconds": 3600})
    with running_service(by_time) as service:
        checkpointer = quick_checkpointer(service)
        append(service, 5)
        a_whole_round_ran(checkpointer)
        assert checkpoint_sizes(settings)[-1] == 100  # 5 new events, and the hour has not passed
        checkpointer.clock = lambda: time.time() + 3600  # now it has
        wait_for(lambda: checkpoint_sizes(settings)[-1] == 105)


def test_the_service_refuses_to_sign_a_log_that_no_longer_extends_its_last_checkpoint(service: Service) -> None:
    append(service, 300)
    sign_now(service)
    # Rewrite one leaf in the last, partial block (its stored nodes are not cached yet).
    superuser(service.settings, "UPDATE events SET leaf_hash = sha256(leaf_hash) WHERE seq = 290")
    append(service, 5)
    with service.client(service.token(Role.ADMIN)) as admin:
        refused = admin.post("/v1/checkpoints")
    assert refused.status_code == 409
    assert "not consistent with the checkpoint of size 300" in refused.json()["detail"]
    assert checkpoint_sizes(service.settings)[-1] == 300


def test_the_service_refuses_to_sign_after_the_tail_was_cut(service: Service) -> None:
    append(service, 20)
    sign_now(service)
    superuser(service.settings, "DELETE FROM events WHERE seq >= 15")
    result = run_cli(service.settings, "checkpoint")
    assert result.returncode == 1
    assert "rows were removed" in " ".join(result.stderr.split())


def test_key_rotation_signs_new_checkpoints_with_the_new_key_and_keeps_old_ones_verifiable(service: Service) -> None:
    append(service, 4)
    first = sign_now(service)
    old_key = log_verifier(service)
    rotated = run_cli(service.settings, "checkpoint", "--rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    append(service, 4)
    second = sign_now(service)
    new_key = log_verifier(service)
    assert new_key.key_id != old_key.key_id
    open_checkpoint(first, [old_key])
    open_checkpoint(second, [new_key])
    with pytest.raises(ValueError):
        open_checkpoint(second, [old_key])
    with service.client(service.token(Role.AUDITOR)) as auditor:
        listed = auditor.get("/v1/checkpoints/verifier-keys").text.split()
    assert old_key.vkey in listed and new_key.vkey in listed
    code, report = verify_json(service.settings, "--key", old_key.vkey, "--key", new_key.vkey)
    assert code == 0, report


# --- publication -------------------------------------------------------------------


class _Webhook(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_checkpoints_go_to_a_directory_a_webhook_and_a_witness_that_cosigns(settings: Settings, tmp_path: Path) -> None:
    log_key = NoteSigner.generate(settings.log_name)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "signing.key").write_bytes(log_key.private_key_pem())
    hook = type("Hook", (_Webhook,), {"received": []})
    webhook = ThreadingHTTPServer(("127.0.0.1", 0), hook)
    threading.Thread(target=webhook.serve_forever, args=(0.05,), daemon=True).start()
    with start_witness(log_key.vkey) as witness:
        configured = settings.model_copy(
            update={
                "checkpoint_every_events": 50,
                "checkpoint_interval_seconds": 3600,
                "checkpoint_dir": tmp_path / "worm",
                "checkpoint_webhook_url": f"http://127.0.0.1:{webhook.server_address[1]}/checkpoints",
                "witnesses": [WitnessConfig(url=witness.url, vkey=witness.vkey)],
            }
        )
        with running_service(configured) as service:
            quick_checkpointer(service)
            for size in (60, 120, 180):
                append(service, 60)  # one batch: the checkpoint lands on exactly this size
                wait_for(lambda size=size: (tmp_path / "worm" / f"{size}.note").exists())
            wait_for(lambda: "180" in (tmp_path / "worm" / "latest.note").read_text().split("\n")[1])
            with service.client(service.token(Role.AUDITOR)) as auditor:
                latest = auditor.get("/v1/checkpoints/latest").text
    webhook.shutdown()
    cosigner = CosignatureVerifier.from_vkey(witness.vkey)
    checkpoint, opened = open_checkpoint(latest, [log_key.verifier])
    assert checkpoint.size == 180
    cosigned = [line for line in latest.splitlines() if line.startswith(f"\u2014 {cosigner.name} ")]
    assert len(cosigned) == 1
    verify_cosignature(opened.text, cosigned[0] + "\n", cosigner)
    on_disk = (tmp_path / "worm" / "180.note").read_text()
    assert on_disk == latest and (tmp_path / "worm" / "latest.note").read_text() == latest
    assert latest in hook.received
    # The witness saw every checkpoint in order, each proven consistent with the one before.
    assert witness.witness.state[settings.log_name][0] == 180
    assert witness.witness.refused == []


# --- verification with checkpoints ------------------------------------------------------


def rewrite_whole_chain(settings: Settings, changed_seq: int, *, keep_checkpoints: bool = False) -> list[bytes]:
    """A superuser's consistent rewrite: change one record and recompute every
    hash after it, drop the stored checkpoints and tree, and bring the read
    model (``event_facts``, ``system_pairs``, the flow rollup) into line so nothing derived
    gives the change away.
    Returns the new leaf hashes."""
    rows = query(str(settings.database_url), "SELECT seq, record FROM events ORDER BY seq")
    previous = genesis_hash(settings.log_name)
    leaves = []
    statements = ["DELETE FROM merkle_nodes"]
    if not keep_checkpoints:
        statements += ["DELETE FROM checkpoint_cosignatures", "DELETE FROM checkpoints"]
    for row in rows:
        record = json.loads(row["record"])
        if row["seq"] == changed_seq:
            record["destination"]["system_id"] = "shadow-copy"
            statements.append(f"UPDATE event_facts SET destination_system = 'shadow-copy' WHERE seq = {row['seq']}")
        text = canonical_json(record).decode()
        leaf = leaf_hash(text.encode())
        leaves.append(leaf)
        previous = chain_hash(previous, leaf)
        if row["seq"] >= changed_seq:
            statements.append(
                f"UPDATE events SET record = $${text}$$, leaf_hash = '\\x{leaf.hex()}', "
                f"chain_hash = '\\x{previous.hex()}' WHERE seq = {row['seq']}"
            )
    # The pairs coverage keeps (migration 0008), rebuilt from the rewritten facts.
    statements += [
        "DELETE FROM system_pairs",
        "INSERT INTO system_pairs (log_id, source_system, destination_system, first_seq, first_occurred_at) "
        "SELECT DISTINCT ON (log_id, source_system, destination_system) "
        "log_id, source_system, destination_system, seq, occurred_at FROM event_facts "
        "ORDER BY log_id, source_system, destination_system, seq",
        # and the flow map's rollup (migration 0015)
        "DELETE FROM flow_days",
        "INSERT INTO flow_days SELECT log_id, (occurred_at AT TIME ZONE 'UTC')::date, source_system, "
        "destination_system, event_type, coalesce(purpose_of_use, ''), action, count(*), min(occurred_at), "
        "max(occurred_at) FROM event_facts GROUP BY 1, 2, 3, 4, 5, 6, 7",
        "DELETE FROM flow_day_elements",
        "INSERT INTO flow_day_elements SELECT DISTINCT log_id, (occurred_at AT TIME ZONE 'UTC')::date, "
        "source_system, destination_system, unnest(data_elements) FROM event_facts",
    ]
    superuser(settings, *statements)
    return leaves


def test_a_consistent_rewrite_passes_the_rows_but_not_an_external_checkpoint(service: Service, tmp_path: Path) -> None:
    kept = tmp_path / "auditor"
    kept.mkdir()
    append(service, 40)
    (kept / "a.note").write_text(sign_now(service))
    append(service, 20)
    (kept / "b.note").write_text(sign_now(service))
    vkey = log_verifier(service).vkey
    rewrite_whole_chain(service.settings, changed_seq=45)
    code, report = verify_json(service.settings)
    assert code == 0, report  # the rows alone are self-consistent
    code, report = verify_json(service.settings, "--checkpoint", str(kept), "--key", vkey)
    assert code == 1, report
    assert report["kind"] == "rewritten"
    assert report["first_bad_seq"] == 40  # bracketed: the rows still match the checkpoint of 40


def test_a_truncated_tail_is_found_by_the_stored_and_the_external_checkpoint(service: Service, tmp_path: Path) -> None:
    append(service, 30)
    note = sign_now(service)
    (tmp_path / "cp.note").write_text(note)
    superuser(service.settings, "DELETE FROM events WHERE seq >= 25")
    code, report = verify_json(service.settings)
    assert code == 1 and (report["kind"], report["first_bad_seq"]) == ("truncated", 25)
    superuser(service.settings, "DELETE FROM checkpoints WHERE tree_size = 30")  # and hide the evidence
    code, report = verify_json(service.settings, "--checkpoint", str(tmp_path / "cp.note"))
    assert code == 1 and (report["kind"], report["first_bad_seq"]) == ("truncated", 25)


def test_a_checkpoint_signed_with_another_key_is_found_with_pinned_keys(service: Service) -> None:
    append(service, 10)
    real = log_verifier(service).vkey
    note = sign_now(service)
    assert verify_json(service.settings, "--key", real)[0] == 0
    # Same checkpoint body (a correct root), signed by a key the operator slipped into the table.
    forger = NoteSigner.generate(service.settings.log_name)
    forged = sign_note(note[: note.rfind("\n\n") + 1], [forger])
    superuser(
        service.settings,
        f"INSERT INTO verifier_keys (log_id, key_name, key_id, vkey) "
        f"SELECT log_id, '{forger.name}', {forger.key_id}, '{forger.vkey}' FROM logs",
        f"UPDATE checkpoints SET note = $${forged}$$, vkey = '{forger.vkey}' WHERE tree_size = 10",
    )
    code, report = verify_json(service.settings, "--key", real)
    assert code == 1, report
    assert (report["kind"], report["first_bad_seq"]) == ("checkpoint_signature_invalid", 10)


def test_a_checkpoint_inconsistent_with_an_earlier_one_is_found(service: Service) -> None:
    append(service, 10)
    sign_now(service)  # size 10, over the original rows
    # Someone with the signing key rewrites history and signs a later checkpoint over it.
    rewrite_whole_chain(service.settings, changed_seq=4, keep_checkpoints=True)
    append(service, 5)
    signer = NoteSigner.from_pem(service.settings.log_name, (service.settings.data_dir / "signing.key").read_bytes())
    root = root_from_leaf_hashes(new_leaves(service.settings, 0, 15))
    later = sign_note(Checkpoint(service.settings.log_name, 15, root).body(), [signer])
    superuser(
        service.settings,
        f"INSERT INTO checkpoints (log_id, tree_size, root_hash, note, vkey) "
        f"SELECT log_id, 15, '\\x{root.hex()}', $${later}$$, '{signer.vkey}' FROM logs",
    )
    code, report = verify_json(service.settings, "--key", signer.vkey)
    assert code == 1, report
    assert (report["kind"], report["first_bad_seq"]) == ("checkpoints_inconsistent", 0)


def new_leaves(settings: Settings, begin: int, end: int) -> list[bytes]:
    rows = query(
        str(settings.database_url), "SELECT leaf_hash FROM events WHERE seq >= $1 AND seq < $2 ORDER BY seq", begin, end
    )
    return [bytes(r["leaf_hash"]) for r in rows]


def test_incremental_verification_resumes_from_the_last_verified_checkpoint(service: Service, tmp_path: Path) -> None:
    state = tmp_path / "verify-state.json"
    append(service, 50)
    sign_now(service)
    code, report = verify_json(service.settings, "--state", str(state))
    assert code == 0 and report["rows_checked"] == 50 and report["resumed_from"] == 0
    assert json.loads(state.read_text())["tree_size"] == 50
    append(service, 30)
    sign_now(service)
    code, report = verify_json(service.settings, "--state", str(state))
    assert code == 0 and report["resumed_from"] == 50 and report["rows_checked"] == 30
    assert json.loads(state.read_text())["tree_size"] == 80
    # A change to the row where the state stopped is caught on resume.
    superuser(service.settings, "UPDATE events SET chain_hash = sha256(chain_hash) WHERE seq = 79")
    code, report = verify_json(service.settings, "--state", str(state))
    assert code == 1 and (report["kind"], report["first_bad_seq"]) == ("resume_state_mismatch", 79)
