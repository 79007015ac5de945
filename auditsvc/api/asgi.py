"""The ASGI entry point uvicorn imports in each worker process."""

from .app import create_app

app = create_app()
