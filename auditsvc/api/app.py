"""The FastAPI application: lifespan, routers, error handlers, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .. import __version__
from ..domain.alerts import AlertConfig, AlertWatcher
from ..domain.disclosures import DisclosureQuery
from ..domain.ingest import EventBatch
from ..domain.reports import PatientAccessQuery
from ..domain.suspensions import SuspensionIn
from ..domain.systems import SystemEntryIn
from ..runtime import open_audit_log
from ..settings import Settings, get_settings
from ..telemetry import setup_telemetry
from . import console
from .deps import install_access_control
from .errors import install_error_handlers
from .fhir_http import install_fhir_errors
from .keepalive import KeepAliveLimit
from .limits import BodyLimits
from .openapi_doc import complete_openapi
from .routes import (
    access_reports,
    alerts,
    checkpoints,
    coverage,
    disclosures,
    events,
    fhir_feed,
    fhir_search,
    flows,
    health,
    proofs,
    quarantine,
    reports,
    reviews,
    systems,
)
from .schemas import component_schemas
from .security_headers import SecurityHeaders
from .tls import require_client_certificates


def create_app(settings: Settings | None = None, database_url: str | None = None) -> FastAPI:
    """The API; ``database_url`` overrides the runtime DSN (tests, embedded serve)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_audit_log(settings, database_url) as audit:
            app.state.audit = audit
            alerts = AlertWatcher(audit, AlertConfig.from_settings(settings))
            if settings.alert_interval_seconds > 0:
                alerts.start()
            try:
                yield
            finally:
                await alerts.stop()

    app = FastAPI(
        title="auditsvc",
        version=__version__,
        summary="Append-only, hash-chained PHI access audit log",
        lifespan=lifespan,
        # No 307 from /v1/events/ to /v1/events: its Location would repeat the
        # query string (PHI, if a client put it there) and the client resend it.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    install_access_control(app, settings)
    install_fhir_errors(app)  # after every other handler: it wraps them for /fhir
    app.state.body_limits = BodyLimits.from_settings(settings)
    app.add_middleware(KeepAliveLimit, max_requests=settings.keepalive_max_requests)
    require_client_certificates(app, settings)
    # Outside the error handlers and the mTLS check: every answer carries them.
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(reports.router)
    app.include_router(access_reports.router)
    app.include_router(disclosures.router)
    app.include_router(reviews.router)
    app.include_router(checkpoints.router)
    app.include_router(proofs.router)
    app.include_router(systems.router)
    app.include_router(coverage.router)
    app.include_router(fhir_search.router)
    app.include_router(fhir_feed.router)
    app.include_router(flows.router)
    app.include_router(alerts.router)
    app.include_router(quarantine.router)
    console.mount(app, settings)  # the web console at / (auditsvc/api/console)
    # Once per process (each uvicorn worker builds its app): exporters only
    # when OTEL_* asks; request spans, HTTP metrics, GET /metrics if enabled.
    setup_telemetry(settings).instrument(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                component_schemas(
                    EventBatch,
                    PatientAccessQuery,
                    SystemEntryIn,
                    *access_reports.REQUEST_MODELS,
                    DisclosureQuery,
                    SuspensionIn,
                    *flows.REQUEST_MODELS,
                    *alerts.REQUEST_MODELS,
                )
            )
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            complete_openapi(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
