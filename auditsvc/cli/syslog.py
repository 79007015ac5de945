"""``auditsvc syslog listen``: the ATNA syslog listeners (docs/atna.md).

``auditsvc serve`` starts this itself when a syslog port is set; run it
alone to take syslog on another host or pod than the API.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import typer

from ..settings import Settings
from ..store.engine import runtime_url
from ..syslog.listeners import ListenerConfig, syslog_configured, tls_context
from ..syslog.service import serve_syslog
from ..telemetry import export_plan, setup_telemetry, shutdown_telemetry
from ._common import configure_logging, database, fail, settings

app = typer.Typer(help="ATNA audit messages over syslog (RFC 5425, 6587, 5426).", no_args_is_help=True)


def check_syslog_settings() -> None:
    """Fail with the setting's name if the listeners cannot start."""
    s = settings()
    if s.syslog_metrics_port is not None and "prometheus" not in export_plan(os.environ, s.prometheus_metrics).metrics:
        fail("AUDITSVC_SYSLOG_METRICS_PORT is set but Prometheus metrics are off (AUDITSVC_PROMETHEUS_METRICS)")
    config = ListenerConfig.from_settings(s)
    if config.tls_port is not None:
        try:
            tls_context(config)
        except (ValueError, OSError) as exc:
            fail(f"syslog TLS: {exc}")


@app.command()
def listen() -> None:
    """Serve the syslog listeners configured by AUDITSVC_SYSLOG_*_PORT until SIGTERM."""
    s = settings()
    configure_logging(s.log_format)
    if not syslog_configured(s):
        fail("no syslog listener is configured: set AUDITSVC_SYSLOG_TLS_PORT, _TCP_PORT or _UDP_PORT")
    check_syslog_settings()
    if s.runtime_database_url is None:
        database(s)  # embedded: started and migrated
    # The listener's own telemetry (its counters, its database spans): this
    # is a process of its own, apart from the API's.
    telemetry = setup_telemetry(s)
    try:
        if s.syslog_metrics_port is not None:
            telemetry.serve_prometheus(s.syslog_host, s.syslog_metrics_port)
        asyncio.run(serve_syslog(s, runtime_url(s)))
    except OSError as exc:
        fail(f"cannot listen: {exc}")
    finally:
        shutdown_telemetry()  # OTLP's last export


def start_listener_process(s: Settings) -> subprocess.Popen[bytes] | None:
    """For ``serve``: ``auditsvc syslog listen`` as a child process (once,
    whatever the number of API workers), or None when no port is set. It
    inherits the environment ``serve`` prepared (the runtime DSN)."""
    if not syslog_configured(s):
        return None
    check_syslog_settings()
    return subprocess.Popen([sys.executable, "-m", "auditsvc", "syslog", "listen"], env=dict(os.environ))


def stop_listener_process(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM, and wait for it to append what it had queued."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
