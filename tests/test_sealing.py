"""Patient identifiers are encrypted at rest: sealed with AES-256-GCM under a
key id, found through the keyed-hash index, opened only for privacy
officers, and absent in clear from a dump of the database."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pgserver
import pytest
from sqlalchemy.engine import make_url

from auditsvc.domain.tokens import Role
from auditsvc.sealing import (
    SEAL_PREFIX,
    EnvKeyProvider,
    FileKeyProvider,
    IdentifierSealer,
    SealError,
    StaticKeyProvider,
    read_keyring,
    rotate_keyring,
)
from auditsvc.settings import Settings

from .conftest import Service, env_for, event, query, run_cli

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
EMPI = "urn:oid:2.16.840.1.113883.3.1234.9"
# Synthetic identifiers, distinctive enough that a hit in a dump is no accident.
PATIENTS = [[(MRN, f"MRN-SEAL-{i:05d}"), (EMPI, f"EMPI-SEAL-{i:05d}")] for i in range(12)]
ALL_VALUES = [value for ids in PATIENTS for _, value in ids]


def sealer(keys: dict[str, bytes] | None = None, current: str = "k1") -> IdentifierSealer:
    return IdentifierSealer(StaticKeyProvider(keys or {"k1": b"\x01" * 32}, current))


def test_a_sealed_value_opens_to_itself_and_shows_nothing_of_it() -> None:
    s = sealer()
    sealed = s.seal(MRN, "MRN-SEAL-00001")
    assert sealed.startswith(f"{SEAL_PREFIX}k1:") and "MRN-SEAL" not in sealed
    assert s.open(MRN, sealed) == "MRN-SEAL-00001"
    # A fresh nonce per value (once out of the per-process cache).
    assert s._seal("k1", b"\x01" * 32, MRN, "x") != s._seal("k1", b"\x01" * 32, MRN, "x")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v[:-2] + ("AA" if v[-2:] != "AA" else "BB"), "does not open"),
        (lambda v: v.replace("aes256gcm:", "aes128:"), "not a sealed identifier"),
        (lambda v: v.replace(":k1:", ":k9:"), "'k9' is not configured"),
        (lambda v: v[:36], "too short"),
        (lambda v: v + "!!", "not valid base64url"),
        (lambda v: "MRN-SEAL-00001", "not a sealed identifier"),
    ],
)
def test_an_altered_sealed_value_is_refused_without_naming_it(change, message) -> None:  # type: ignore[no-untyped-def]
    s = sealer()
    sealed = s.seal(MRN, "MRN-SEAL-00001")
    with pytest.raises(SealError, match=message) as caught:
        s.open(MRN, change(sealed))
    assert "MRN-SEAL" not in str(caught.value)


def test_a_sealed_value_moved_under_another_system_does_not_open() -> None:
    s = sealer()
    with pytest.raises(SealError, match="moved under another system"):
        s.open(EMPI, s.seal(MRN, "MRN-SEAL-00001"))


def test_old_keys_open_what_they_sealed_after_rotation() -> None:
    old = sealer({"k1": b"\x01" * 32})
    sealed = old.seal(MRN, "MRN-SEAL-00002")
    new = sealer({"k1": b"\x01" * 32, "k2": b"\x02" * 32}, current="k2")
    assert new.seal(MRN, "MRN-SEAL-00002").startswith(f"{SEAL_PREFIX}k2:")
    assert new.open(MRN, sealed) == "MRN-SEAL-00002"


def test_keys_from_the_environment() -> None:
    k1, k2 = base64.b64encode(b"\x01" * 32).decode(), base64.b64encode(b"\x02" * 32).decode()
    provider = EnvKeyProvider(f"k2:{k2}, k1:{k1}")
    assert provider.current() == ("k2", b"\x02" * 32) and provider.key("k1") == b"\x01" * 32
    for bad, message in [
        ("k1", "<key id>:<base64 key>"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "must be 32 bytes"),
        (f"bad id:{k1}", "key id"),
    ]:
        with pytest.raises(SealError, match=message) as caught:
            EnvKeyProvider(bad)
        assert k1 not in str(caught.value)


def test_keyring_file_is_private_rotates_and_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "identifier-keys.json"
    now = [1000.0]
    provider = FileKeyProvider(path, create=True, clock=lambda: now[0])
    assert path.stat().st_mode & 0o777 == 0o600
    s = IdentifierSealer(provider)
    sealed = s.seal(MRN, "MRN-SEAL-00003")
    new_id, ids = rotate_keyring(path)
    assert (new_id, ids) == ("k2", ["k1", "k2"])
    assert path.stat().st_mode & 0o777 == 0o600
    keys, current = read_keyring(path)
    assert current == "k2" and len(keys["k2"]) == 32
    assert s.seal(MRN, "MRN-SEAL-00005").startswith(f"{SEAL_PREFIX}k1:")  # looked at less than a second ago
    now[0] += 1.0  # the provider looks at the file at most once a second
    assert s.seal(MRN, "MRN-SEAL-00004").startswith(f"{SEAL_PREFIX}k2:")
    assert s.open(MRN, sealed) == "MRN-SEAL-00003"
    path.write_text("{}")
    with pytest.raises(SealError, match="is not in format"):
        FileKeyProvider(path)


def test_production_never_generates_an_identifier_key(tmp_path: Path) -> None:
    from auditsvc.sealing import key_provider

    settings = Settings(
        env="production",
        database_url="postgresql://x@h/db",
        secret_key=base64.b64encode(b"\x00" * 32).decode(),
        data_dir=tmp_path,
    )
    with pytest.raises(SealError, match="no identifier encryption key"):
        key_provider(settings)
    assert not (tmp_path / "identifier-keys.json").exists()


def _fill(service: Service) -> tuple[str, str, str]:
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    officer = service.token(Role.PRIVACY_OFFICER)
    auditor = service.token(Role.AUDITOR)
    events = [event(ids) for ids in PATIENTS]
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()
    return officer, auditor, events[0]["event_id"]


def _dump(settings: Settings) -> str:
    """The whole database as ``pg_dump`` writes it (schema and data)."""
    url = make_url(str(settings.database_url))
    pg_dump = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    host = url.query.get("host") or url.host
    args = [str(pg_dump), "--no-owner", "-U", url.username or "postgres", "-d", str(url.database)]
    if host:
        args += ["-h", str(host)]
    if url.port:
        args += ["-p", str(url.port)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_database_dump_holds_no_identifier_in_clear(service: Service) -> None:
    officer, auditor, event_id = _fill(service)
    with service.client(officer) as client:
        client.post("/v1/reports/patient-access", json={"identifier": {"system": MRN, "value": "MRN-SEAL-00001"}})
        client.get(f"/v1/events/{event_id}").raise_for_status()
    with service.client(auditor) as client:
        client.get(f"/v1/events/{event_id}").raise_for_status()
    dump = _dump(service.settings)
    assert "COPY public.events" in dump and "aes256gcm:k1:" in dump  # the dump is real and holds the rows
    hits = [value for value in ALL_VALUES if value in dump]
    assert hits == []
    assert dump.count("aes256gcm:") >= len(ALL_VALUES)


def test_privacy_officers_see_identifiers_opened_auditors_as_stored(service: Service) -> None:
    officer, auditor, event_id = _fill(service)
    with service.client(officer) as client:
        report = client.post(
            "/v1/reports/patient-access", json={"identifier": {"system": EMPI, "value": "EMPI-SEAL-00000"}}
        ).json()
        read = client.get(f"/v1/events/{event_id}").json()
    assert report["patient"]["identifiers"] == [  # linked through the EMPI id, sorted by system
        {"system": MRN, "value": "MRN-SEAL-00000"},
        {"system": EMPI, "value": "EMPI-SEAL-00000"},
    ]
    [shown] = report["events"]
    assert shown["patient"]["identifiers"] == [
        {"system": MRN, "value": "MRN-SEAL-00000"},
        {"system": EMPI, "value": "EMPI-SEAL-00000"},
    ]
    assert read["patient_identifiers"] == shown["patient"]["identifiers"]
    stored = read["record"]["patient"]["identifiers"]
    assert [i["system"] for i in stored] == [MRN, EMPI] and all(
        set(i) == {"system", "value_enc", "value_hmac"} for i in stored
    )
    with service.client(auditor) as client:
        as_auditor = client.get(f"/v1/events/{event_id}").json()
    assert as_auditor["record"] == read["record"] and as_auditor.get("patient_identifiers") is None
    assert "SEAL-0" not in json.dumps(as_auditor)


def test_rotation_reaches_the_running_service_and_old_events_still_open(service: Service) -> None:
    officer, _, _ = _fill(service)
    rotated = run_cli(service.settings, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "k2 now seals new writes" in rotated.stdout
    provider = service.app.state.audit.keys.sealer.provider
    provider.clock = lambda: time.monotonic() + 1.0  # a second on: the service looks at the file again
    emitter = service.token(Role.EMITTER, ["epic-adt"])
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": [event(PATIENTS[0])]}).raise_for_status()
    rows = query(str(service.settings.database_url), "SELECT record FROM events ORDER BY seq DESC LIMIT 1")
    assert json.loads(rows[0]["record"])["patient"]["identifiers"][0]["value_enc"].startswith("aes256gcm:k2:")
    with service.client(officer) as client:
        report = client.post(
            "/v1/reports/patient-access", json={"identifier": {"system": MRN, "value": "MRN-SEAL-00000"}}
        ).json()
    assert len(report["events"]) == 2
    assert all(e["patient"]["identifiers"][0]["value"] == "MRN-SEAL-00000" for e in report["events"])
    listed = run_cli(service.settings, "keys", "list")
    assert listed.returncode == 0 and "k2  (current)" in listed.stdout and "k1" in listed.stdout
    verified = run_cli(service.settings, "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["index_checked"] is True


def test_verify_needs_no_identifier_key_even_in_production(service: Service, tmp_path: Path) -> None:
    _fill(service)
    env = env_for(service.settings)
    env.update(AUDITSVC_ENV="production", AUDITSVC_DATA_DIR=str(tmp_path / "no-keys"))
    done = subprocess.run(
        [sys.executable, "-m", "auditsvc", "verify", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["index_checked"] is True
    assert not (tmp_path / "no-keys" / "identifier-keys.json").exists()
