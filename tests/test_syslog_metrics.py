"""The listener process's own metrics: ``auditsvc syslog listen`` with
Prometheus on serves them on AUDITSVC_SYSLOG_METRICS_PORT, and they count
what arrived, what was stored and what went to quarantine, by transport and
reason, never naming a sender or a patient."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditsvc.settings import Settings

from .conftest import env_for, free_port, query
from .syslog_messages import audit_message, syslog_frame

pytestmark = pytest.mark.db


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (
            sample.name,
            tuple(sorted((k, v) for k, v in sample.labels.items() if k.startswith("auditsvc_"))),
        ): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("auditsvc_syslog")
    }


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else "exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.1)


def test_the_listener_counts_received_stored_and_quarantined_messages(settings: Settings) -> None:
    tcp, metrics = free_port(), free_port()
    env = {
        **env_for(settings),
        "AUDITSVC_SYSLOG_TCP_PORT": str(tcp),
        "AUDITSVC_PROMETHEUS_METRICS": "true",
        "AUDITSVC_SYSLOG_METRICS_PORT": str(metrics),
    }
    good = syslog_frame(audit_message("MRN-SYN-M001", source="ehr-app"))
    bad = b"<13>1 - - - - - - <AuditMessage><EventIdentification"
    process = subprocess.Popen(
        [sys.executable, "-m", "auditsvc", "syslog", "listen"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(tcp, process)
        with socket.create_connection(("127.0.0.1", tcp)) as sender:
            sender.sendall(b"".join(b"%d %s" % (len(f), f) for f in (good, bad)))
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
            found = _samples(text)
            quarantined = found.get(
                (
                    "auditsvc_syslog_messages_quarantined_total",
                    (("auditsvc_reason", "xml_malformed"), ("auditsvc_transport", "tcp")),
                )
            )
            if quarantined == 1.0 and found.get(
                ("auditsvc_syslog_messages_appended_total", (("auditsvc_transport", "tcp"),))
            ):
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert found[("auditsvc_syslog_messages_received_total", (("auditsvc_transport", "tcp"),))] == 2.0
        assert found[("auditsvc_syslog_messages_appended_total", (("auditsvc_transport", "tcp"),))] == 1.0
        assert found[("auditsvc_syslog_events_appended_total", (("auditsvc_transport", "tcp"),))] == 1.0
        assert "MRN-SYN" not in text and "ehr-app" not in text and "127.0.0.1" not in text
        assert query(str(settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"] == 1
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_metrics_port_without_prometheus_is_refused_naming_both_settings(settings: Settings) -> None:
    env = {**env_for(settings), "AUDITSVC_SYSLOG_TCP_PORT": str(free_port()), "AUDITSVC_SYSLOG_METRICS_PORT": "9999"}
    result = subprocess.run(
        [sys.executable, "-m", "auditsvc", "syslog", "listen"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "AUDITSVC_SYSLOG_METRICS_PORT" in result.stderr and "AUDITSVC_PROMETHEUS_METRICS" in result.stderr
