"""The durable spool on its own: files, lock, recovery after a torn write,
acknowledgement watermark, segment rotation, bound. Sending goes through
``httpx.MockTransport``; tests/test_sdk_faults.py has the real service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from auditsvc_sdk import AsyncAuditClient, AuditClient, RetryPolicy, SpoolFull, SpoolLocked
from auditsvc_sdk._spool import Spool

from .conftest import ScriptedClock, event

DOWN = RetryPolicy(initial_backoff=5, max_backoff=5)


def refuse(_: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        self.ids += [e["event_id"] for e in events]
        return httpx.Response(200, json={"results": [{"status": "accepted"} for _ in events]})


def client(spool: Path, handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> AuditClient:
    options.setdefault("retry", RetryPolicy(initial_backoff=0.01, max_backoff=0.05))
    return AuditClient("http://audit.test", "tok", transport=httpx.MockTransport(handler), spool_dir=spool, **options)


def spool_offline(spool: Path, count: int) -> list[str]:
    """Record ``count`` events while the service is unreachable; they stay spooled."""
    events = [event() for _ in range(count)]
    offline = client(spool, refuse, retry=DOWN)
    for e in events:
        offline.record(e)
    assert offline.close(timeout=0) is False
    return [e["event_id"] for e in events]


def segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.seg"))


def test_spool_directory_and_files_are_private(tmp_path) -> None:
    spool = tmp_path / "spool"
    spool_offline(spool, 2)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    files = [p for p in spool.iterdir()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_a_second_live_client_on_the_same_spool_is_refused(tmp_path) -> None:
    first = client(tmp_path, Recorder())
    with pytest.raises(SpoolLocked):
        client(tmp_path, Recorder())
    first.close()
    client(tmp_path, Recorder()).close()


def test_events_left_in_the_spool_are_sent_by_the_next_client_once(tmp_path) -> None:
    ids = spool_offline(tmp_path, 30)
    received = Recorder()
    again = client(tmp_path, received, max_batch=7)
    assert again.counters().queue_depth == 30
    assert again.flush(timeout=5)
    assert again.close()
    assert received.ids == ids
    after = Recorder()
    client(tmp_path, after).close()
    assert after.ids == []
    assert segments(tmp_path) == [] or all(p.stat().st_size == 0 for p in segments(tmp_path))


async def test_an_async_client_sends_what_an_earlier_run_left_without_being_asked(tmp_path) -> None:
    ids = spool_offline(tmp_path, 12)
    received = Recorder()
    later = AsyncAuditClient(
        "http://audit.test", "tok", transport=httpx.MockTransport(received), spool_dir=tmp_path, max_batch=5
    )
    deadline = time.monotonic() + 5
    while later.counters().queue_depth and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # no record(), no flush(): the sender started on its own
    assert later.counters().queue_depth == 0
    assert received.ids == ids
    assert await later.close()


def test_a_torn_last_record_is_detected_and_never_sent(tmp_path, caplog) -> None:
    ids = spool_offline(tmp_path, 5)
    (segment,) = [p for p in segments(tmp_path) if p.stat().st_size]
    data = segment.read_bytes()
    segment.write_bytes(data[:-20])  # the last write cut short by a crash
    received = Recorder()
    with caplog.at_level(logging.WARNING, logger="auditsvc_sdk"):
        again = client(tmp_path, received)
        assert again.flush(timeout=5)
        again.close()
    assert received.ids == ids[:4]
    assert "torn" in caplog.text


def test_a_record_failing_its_checksum_is_not_sent(tmp_path) -> None:
    ids = spool_offline(tmp_path, 3)
    (segment,) = [p for p in segments(tmp_path) if p.stat().st_size]
    data = bytearray(segment.read_bytes())
    (length,) = struct.unpack_from(">I", data, 1)
    second = 9 + length
    data[second + 9 + 40] ^= 0x01  # one flipped bit inside the second record's payload
    segment.write_bytes(bytes(data))
    received = Recorder()
    again = client(tmp_path, received)
    assert again.flush(timeout=5)
    again.close()
    assert received.ids == ids[:1]


def test_acknowledged_events_are_not_resent_and_old_segments_go(tmp_path) -> None:
    spool = Spool(tmp_path, segment_bytes=2048, fsync="never")
    payloads = [json.dumps({"n": i, "pad": "x" * 100}).encode() for i in range(60)]
    for p in payloads:
        spool.put(p)
    assert len(segments(tmp_path)) > 3
    taken = spool.take(25, 10**6)
    assert taken == payloads[:25]
    spool.ack(25)
    spool.close()
    reopened = Spool(tmp_path, segment_bytes=2048, fsync="never")
    assert reopened.depth == 35
    assert reopened.take(100, 10**6) == payloads[25:]
    reopened.ack(35)
    assert reopened.depth == 0 and reopened.pending_bytes == 0
    assert all(p.stat().st_size == 0 for p in segments(tmp_path))  # only the fresh, empty segment is left
    reopened.close()


def test_take_respects_the_byte_budget_but_always_makes_progress(tmp_path) -> None:
    spool = Spool(tmp_path, fsync="never")
    big, small = b"b" * 5000, b"s" * 10
    spool.put(big)
    spool.put(small)
    assert spool.take(10, 100) == [big]  # larger than the budget alone: still taken
    spool.ack(1)
    assert spool.take(10, 100) == [small]
    spool.close()


def test_a_full_spool_blocks_then_raises_and_keeps_every_event(tmp_path) -> None:
    offline = client(tmp_path, refuse, retry=DOWN, spool_max_bytes=8 * 1024, block_timeout=5)
    offline._clock = ScriptedClock(0.0, 5.0)  # filling: the bound runs out at once
    recorded = []
    with pytest.raises(SpoolFull):
        for _ in range(100):
            e = event()
            offline.record(e)
            recorded.append(e["event_id"])
    offline._clock = clock = ScriptedClock(100.0, 104.99, 105.0)  # starts, waits short of the bound, reaches it
    with pytest.raises(SpoolFull):
        offline.record(event())
    assert clock.now - 100.0 >= 5 and clock.reads >= 3  # it waited for room, and gave up at the bound
    assert offline.counters().queue_depth == len(recorded) == offline.counters().spooled
    offline.close(timeout=0)
    received = Recorder()
    again = client(tmp_path, received)
    assert again.flush(timeout=5)
    again.close()
    assert received.ids == recorded


def test_fsync_always_and_interval_both_persist(tmp_path) -> None:
    for policy in ("always", "interval"):
        spool = Spool(tmp_path / policy, fsync=policy, fsync_interval=0.01)  # type: ignore[arg-type]
        spool.put(b"{}")
        spool.close()
        reopened = Spool(tmp_path / policy)
        assert reopened.depth == 1
        reopened.close()
    with pytest.raises(ValueError):
        Spool(tmp_path / "x", fsync="sometimes")  # type: ignore[arg-type]
    assert os.path.exists(tmp_path / "interval" / "lock")
