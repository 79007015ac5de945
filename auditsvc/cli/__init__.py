"""The ``auditsvc`` command line (Typer). Configuration comes from
``AUDITSVC_*`` environment variables; see README.md."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from ..api.tls import export_tls_options, uvicorn_tls_options
from ..keys import ensure_signing_key, load_keys
from ..store.engine import runtime_url
from ..store.migrate import upgrade_head
from ..telemetry import export_plan
from . import keys, quarantine, report, syslog, systems, tokens
from ._common import build_read_model, configure_logging, console, database, fail, settings
from .checkpoints import checkpoint
from .demo import demo
from .export import export
from .report_break_glass import review
from .verify import verify

app = typer.Typer(
    name="auditsvc",
    help="Append-only, hash-chained PHI access audit log.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold PHI or secrets
)
app.add_typer(tokens.app, name="tokens")
app.add_typer(report.app, name="report")
app.add_typer(keys.app, name="keys")
app.add_typer(systems.app, name="systems")
app.add_typer(syslog.app, name="syslog")
app.add_typer(quarantine.app, name="quarantine")
app.command()(verify)
app.command()(checkpoint)
app.command()(export)
app.command()(demo)
app.command()(review)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (AUDITSVC_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (AUDITSVC_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes (AUDITSVC_WORKERS)")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="HTTPS certificate chain, PEM (AUDITSVC_TLS_CERT_FILE)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="its private key, PEM (AUDITSVC_TLS_KEY_FILE)")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="CA for client certificates, PEM (AUDITSVC_TLS_CLIENT_CA_FILE)")
    ] = None,
    tls_client_auth: Annotated[
        str | None, typer.Option(help="none|optional|emitters|required (AUDITSVC_TLS_CLIENT_AUTH)")
    ] = None,
) -> None:
    """Serve the API; with no AUDITSVC_DATABASE_URL, on the embedded PostgreSQL."""
    import uvicorn

    export_tls_options(tls_cert, tls_key, tls_client_ca, tls_client_auth)  # to the settings and the workers
    s = settings()
    log_config = configure_logging(s.log_format)
    owner = database(s)  # embedded: started and migrated here, once, before workers fork
    if not s.embedded and s.migrate_on_start:
        upgrade_head(s, owner)
    # The read model of events stored before migration 0006 is built by the
    # service in the background (domain/backfill.py): ingest starts at once.
    load_keys(s)
    signing_key = ensure_signing_key(s)
    # Workers connect as the runtime role; they inherit the DSN, not the owner's.
    os.environ["AUDITSVC_RUNTIME_DATABASE_URL"] = runtime_url(s)
    os.environ.setdefault("AUDITSVC_DATA_DIR", str(s.data_dir.resolve()))
    host, port, workers = host or s.host, port or s.port, workers or s.workers
    if workers > 1 and "prometheus" in export_plan(os.environ, s.prometheus_metrics).metrics:
        fail(
            "Prometheus metrics (GET /metrics) need one worker process: each worker counts only its own "
            "requests and a scrape reaches one of them. Run more pods (or replicas) with one worker each, "
            "or export metrics over OTLP"
        )
    try:
        tls = uvicorn_tls_options(s)
    except ValueError as exc:
        fail(str(exc))
    where = f"embedded PostgreSQL in {s.data_dir}" if s.embedded else "external PostgreSQL"
    console.print(
        f"auditsvc on {'https' if tls else 'http'}://{host}:{port} ({where}); signing key {signing_key}",
        highlight=False,
    )
    if workers == 1:
        from ..api import asgi  # noqa: F401 - built now, so no signal falls between the handlers below and uvicorn's
    _stop_quietly_on_signals()
    listener = syslog.start_listener_process(s)  # ATNA syslog, when a port is set: one process for all workers
    try:
        uvicorn.run(
            "auditsvc.api.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,  # each worker applies it: path-only access log, text or JSON
            log_level=None,
            proxy_headers=True,
            server_header=False,
            **tls,
        )
    finally:
        syslog.stop_listener_process(listener)
    console.print("auditsvc stopped", highlight=False)


def _stop_quietly_on_signals() -> None:
    """SIGTERM and SIGINT stop ``serve`` with exit status 0.

    uvicorn takes both signals while it serves, shuts down, then raises the
    signal again to whatever handler was there before: the default one
    would kill the process (status -15, no exit handlers, so the embedded
    server stays up) or raise KeyboardInterrupt. This handler is that
    previous one: the signal was answered already, so it does nothing."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: None)


@app.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head) as the owner."""
    s = settings()
    url = database(s)
    try:
        upgrade_head(s, url)
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    build_read_model(s, url)
    console.print("database is at the latest migration")


@app.command("db-url")
def db_url() -> None:
    """Print the owner DSN in use (embedded or configured)."""
    print(database(settings()))


def main() -> None:
    app()
