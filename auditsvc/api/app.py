"""The FastAPI application: lifespan, routers, error handlers, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .. import __version__
from ..domain.ingest import EventBatch
from ..domain.reports import PatientAccessQuery
from ..runtime import open_audit_log
from ..settings import Settings, get_settings
from .errors import install_error_handlers
from .keepalive import KeepAliveLimit
from .routes import checkpoints, events, health, proofs, reports
from .schemas import component_schemas


def create_app(settings: Settings | None = None, database_url: str | None = None) -> FastAPI:
    """The API; ``database_url`` overrides the runtime DSN (tests, embedded serve)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_audit_log(settings, database_url) as audit:
            app.state.audit = audit
            yield

    app = FastAPI(
        title="auditsvc",
        version=__version__,
        summary="Append-only, hash-chained PHI access audit log",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(KeepAliveLimit, max_requests=settings.keepalive_max_requests)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(reports.router)
    app.include_router(checkpoints.router)
    app.include_router(proofs.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                component_schemas(EventBatch, PatientAccessQuery)
            )
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
