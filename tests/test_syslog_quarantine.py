"""The syslog quarantine: its listing reads the page, never the table (plans),
and ``auditsvc quarantine list|show|replay|discard`` at the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from auditsvc.cli import app as cli
from auditsvc.domain.quarantine import quarantine_frame
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.settings import Settings, get_settings
from auditsvc.store import quarantine as q
from auditsvc.store.engine import runtime_url
from auditsvc.syslog.convert import Rejected
from auditsvc.syslog.header import parse_syslog
from auditsvc.syslog.identity import anonymous, certified

from .conftest import Service, env_for, query
from .plan_bounds import bounded, log_filled_by
from .syslog_messages import audit_message, syslog_frame

pytestmark = pytest.mark.db

ROWS = 30_000
LOG = 1

# 30,000 entries: one in a hundred still quarantined, the rest replayed; five reasons.
FILL = (
    """
    INSERT INTO syslog_quarantine (log_id, message_hmac, message_sealed, message_bytes, reason, detail,
                                   transport, emitter, status)
    SELECT 1, sha256(int8send(i)), 'sealed', 1000, 'reason_' || (i % 5), 'detail', 'tcp', 'syslog-tcp',
           CASE WHEN i % 100 = 0 THEN 'quarantined' ELSE 'replayed' END
    FROM generate_series(1, 30000) AS i
    """,
    "ANALYZE",
)

big_quarantine = log_filled_by(FILL)


@pytest.mark.parametrize("limit", [10, 100])
def test_a_page_of_the_quarantine_reads_about_the_page(big_quarantine: str, limit: int) -> None:
    for status, after in (("quarantined", 0), ("replayed", 15_000), ("discarded", 0)):
        bounded(big_quarantine, q.LIST_SQL[status], (LOG, after, limit), bound=3, constant=20)
    for after in (0, 20_000):
        bounded(big_quarantine, q.LIST_BY_REASON_SQL, (LOG, "reason_0", after, limit), bound=3, constant=20)


@pytest.fixture
def cli_env(settings: Settings) -> Iterator[dict[str, str]]:
    get_settings.cache_clear()
    yield env_for(settings)
    get_settings.cache_clear()


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_replay_and_discard_at_the_command_line(settings: Settings, cli_env: dict[str, str]) -> None:
    mappable = syslog_frame(audit_message("MRN-SYN-Q001", "MRN-SYN-Q002", source="ris-02"))
    not_allowed = syslog_frame(audit_message("MRN-SYN-Q003", source="lab-lis"))
    garbage = b"<13>1 - - - - - - not an audit message"

    async def fill() -> None:
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            # As if an older mapping had refused it: after the "fix" it maps.
            await quarantine_frame(
                audit,
                mappable,
                Rejected("unknown_schema", "older mapping", parse_syslog(mappable)),
                transport="tcp",
                peer="10.0.0.7:51000",
                sender=anonymous("tcp"),
            )
            pacs = certified("pacs-01", {})
            for _ in range(2):  # sent twice: one entry
                await quarantine_frame(
                    audit,
                    not_allowed,
                    Rejected("source_not_allowed", "lab-lis", parse_syslog(not_allowed)),
                    transport="tls",
                    peer="10.0.0.8:40000",
                    sender=pacs,
                )
            await quarantine_frame(
                audit, garbage, Rejected("xml_malformed", "no XML"), transport="udp", peer=None, sender=anonymous("udp")
            )

    asyncio.run(fill())
    url = str(settings.database_url)
    listed = json.loads(run(cli_env, "quarantine", "list", "--json"))["entries"]
    assert [(e["reason"], e["times_received"]) for e in listed] == [
        ("unknown_schema", 1),
        ("source_not_allowed", 2),
        ("xml_malformed", 1),
    ]
    assert "MRN-SYN" not in json.dumps(listed)
    table = run(cli_env, "quarantine", "list", "--reason", "xml_malformed")
    assert "xml_malformed" in table and "unknown_schema" not in table
    first = listed[0]["id"]

    shown = json.loads(run(cli_env, "quarantine", "show", str(first)))
    assert "message" not in shown and query(url, "SELECT count(*) AS n FROM events")[0]["n"] == 0
    revealed = json.loads(run(cli_env, "quarantine", "show", str(first), "--reveal"))
    assert "MRN-SYN-Q001" in revealed["message"]
    [reveal] = query(url, "SELECT record::jsonb AS r FROM events")
    assert json.loads(reveal["r"])["attributes"]["query"] == "syslog-quarantine-reveal"

    replayed = json.loads(run(cli_env, "quarantine", "replay", "--all", "--json"))["replayed"]
    assert [(r["status"], len(r["seqs"]), r["reason"]) for r in replayed] == [
        ("replayed", 2, None),
        ("quarantined", 0, "source_not_allowed"),  # the sender's identity still does not allow it
        ("quarantined", 0, "xml_malformed"),  # still no XML after the header
    ]
    stored = [json.loads(r["r"]) for r in query(url, "SELECT record::jsonb AS r FROM events ORDER BY seq")]
    assert [(r["emitter"], r["event_type"]) for r in stored[1:]] == [
        ("syslog-tcp", stored[1]["event_type"]),
        ("syslog-tcp", stored[1]["event_type"]),
        (stored[0]["emitter"], "syslog-quarantine-change"),  # the replay, recorded as the CLI user's
    ]
    assert json.loads(run(cli_env, "quarantine", "list", "--status", "replayed", "--json"))["entries"][0]["id"] == first

    assert "discarded" in run(cli_env, "quarantine", "discard", str(listed[2]["id"]))
    [discard] = query(url, "SELECT record::jsonb AS r FROM events ORDER BY seq DESC LIMIT 1")
    assert json.loads(discard["r"])["attributes"]["change"] == "discarded"
    remaining = json.loads(run(cli_env, "quarantine", "list", "--json"))["entries"]
    assert [e["reason"] for e in remaining] == ["source_not_allowed"]
    refused = CliRunner().invoke(cli, ["quarantine", "discard", str(listed[2]["id"])], env=cli_env)
    assert refused.exit_code == 2 and "not in quarantine" in refused.output
    missing = CliRunner().invoke(cli, ["quarantine", "show", "999999"], env=cli_env)
    assert missing.exit_code == 2 and "no quarantine entry" in missing.output


def test_admins_list_the_quarantine_over_http_without_the_messages(service: Service) -> None:
    frame = syslog_frame(audit_message("MRN-SYN-H001", source="ris-02"))

    async def fill() -> None:
        settings = service.settings
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            await quarantine_frame(
                audit,
                frame,
                Rejected("unknown_schema", "older mapping", parse_syslog(frame)),
                transport="tcp",
                peer="10.0.0.7:51000",
                sender=anonymous("tcp"),
            )

    asyncio.run(fill())
    with service.client(service.token(Role.ADMIN)) as admin:
        answer = admin.get("/v1/quarantine")
        assert answer.status_code == 200, answer.text
        [entry] = answer.json()["entries"]
        assert entry["reason"] == "unknown_schema" and entry["transport"] == "tcp"
        assert "MRN-SYN" not in answer.text and "message" not in entry
        assert admin.get("/v1/quarantine", params={"limit": 1}).json()["next_after"] == entry["id"]
        assert admin.get("/v1/quarantine", params={"status": "replayed"}).json()["entries"] == []
        assert admin.get("/v1/quarantine", params={"reason": "unknown_schema"}).json()["entries"] == [entry]
        replayed = admin.get("/v1/quarantine", params={"status": "replayed", "reason": "unknown_schema"})
        assert replayed.json() == {"entries": [], "next_after": None}
        assert admin.get("/v1/quarantine", params={"limit": 0}).status_code == 422
    with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
        assert officer.get("/v1/quarantine").status_code == 403


def test_every_reason_an_entry_may_have_is_put_in_words() -> None:
    from auditsvc.domain.atna.errors import REASONS
    from auditsvc.domain.quarantine import REASON_TEXT

    listener = {"syslog_header", "no_events", "invalid_event", "source_not_allowed", "mapping_fault", "append_failed"}
    assert set(REASON_TEXT) == REASONS | listener
    assert all(text and "{" not in text for text in REASON_TEXT.values())
