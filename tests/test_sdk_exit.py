"""What each client does when the interpreter exits, with more than one
client in the process: closing one must not cancel another's exit work.

Real service, real PostgreSQL, a real child process that exits without
closing its client; the proof is the database (sync) and the log (async)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from auditsvc.domain.tokens import Role

from .conftest import REPO, Service, event, query

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"

# Two channels of one interface engine; both hold their events for the
# (hour-long) batch delay, so only close() or the exit flush sends them.
TWO_SYNC_CLIENTS = textwrap.dedent(
    """
    import json, sys
    from auditsvc_sdk import AuditClient
    url, token, path = sys.argv[1:4]
    events = json.load(open(path))
    early = AuditClient(url, token, flush_interval=3600, atexit_timeout=20)
    late = AuditClient(url, token, flush_interval=3600, atexit_timeout=20)
    for e in events[:2]:
        early.record(e)
    for e in events[2:]:
        late.record(e)
    assert early.close(timeout=20)
    assert late.counters().sent == 0, "the test needs events still queued at exit"
    print("exiting with", late.counters().queue_depth, "queued", flush=True)
    # no late.close(): the interpreter's exit flushes it
    """
)

TWO_ASYNC_CLIENTS = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from auditsvc_sdk import AsyncAuditClient
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    url, token, path = sys.argv[1:4]
    events = json.load(open(path))

    async def main():
        early = AsyncAuditClient(url, token, flush_interval=3600)
        late = AsyncAuditClient(url, token, flush_interval=3600)
        for e in events[:2]:
            await early.record(e)
        for e in events[2:]:
            await late.record(e)
        assert await early.close(timeout=20)
        return late

    late = asyncio.run(main())
    print("exiting with", late.counters().queue_depth, "queued", flush=True)
    """
)


def _run_child(script: str, service: Service, tmp_path: Path, events: list[dict[str, object]]) -> str:
    token = service.token(Role.EMITTER, ["epic-adt"])
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    child = subprocess.run(
        [sys.executable, "-c", script, service.url, token, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    return child.stdout


def _stored_ids(service: Service) -> list[str]:
    rows = query(str(service.settings.database_url), "SELECT event_id FROM events ORDER BY seq")
    return [str(r["event_id"]) for r in rows]


def test_closing_one_client_keeps_the_exit_flush_of_another(service: Service, tmp_path: Path) -> None:
    events = [event([(MRN, f"MRN-EXIT-{i:04d}")]) for i in range(5)]
    output = _run_child(TWO_SYNC_CLIENTS, service, tmp_path, events)
    assert "exiting with 3 queued" in output
    assert sorted(_stored_ids(service)) == sorted(str(e["event_id"]) for e in events)


def test_closing_one_async_client_keeps_the_exit_report_of_another(service: Service, tmp_path: Path) -> None:
    events = [event([(MRN, f"MRN-AEXIT-{i:04d}")]) for i in range(5)]
    output = _run_child(TWO_ASYNC_CLIENTS, service, tmp_path, events)
    assert "exiting with 3 queued" in output
    # At exit no event loop is left to send on: the unsent events are reported, not silently dropped.
    assert "closed with 3 events the service did not acknowledge in time" in output
    assert sorted(_stored_ids(service)) == sorted(str(e["event_id"]) for e in events[:2])
