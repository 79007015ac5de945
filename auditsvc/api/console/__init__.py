"""The privacy office's web console, served by the API at ``/``.

Server-rendered pages (Jinja2 templates), a little JavaScript and a style
sheet shipped in the package (``static/``, no CDN), sessions kept in
PostgreSQL. ``mount(app, settings)`` adds it to the API application; a page
is a router of its own (``pages_*.py``) listed in ``render.PAGES`` and
guarded by ``guard.console_user``. docs/console/README.md has the map.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ...domain.oidc_signin import OidcSignIn, SignInConfig
from ...settings import Settings
from ..deps import AccessControl
from . import (
    auth,
    home,
    pages_access,
    pages_admin,
    pages_auditor,
    pages_break_glass,
    pages_coverage,
    pages_disclosures,
    pages_flows,
    pages_patient,
    pages_quarantine,
)
from .guard import install_console_errors
from .render import HERE
from .session import ConsoleConfig

__all__ = ["STATIC_PATH", "mount"]

STATIC_PATH = "/static"


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve the console from ``app``: its routes, static files and error pages."""
    app.state.console = ConsoleConfig.from_settings(settings)
    access: AccessControl = app.state.access_control
    app.state.console_oidc = (
        OidcSignIn(SignInConfig.from_settings(settings), access.oidc) if access.oidc is not None else None
    )
    install_console_errors(app)
    served: set[str] = set()
    for module in (
        auth,
        home,
        pages_patient,
        pages_access,
        pages_disclosures,
        pages_break_glass,
        pages_coverage,
        pages_flows,
        pages_auditor,
        pages_admin,
        pages_quarantine,
    ):
        app.include_router(module.router)
        served.update(str(getattr(route, "path", "")) for route in module.router.routes)
    app.state.console_paths = frozenset(served)  # the navigation lists the pages served
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
