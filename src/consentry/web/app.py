"""FastAPI application factory (``consentry serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from consentry import __version__
from consentry.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Consentry", version=__version__)
    app.state.settings = settings

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """Liveness: the process is up."""
        return {"status": "ok", "version": __version__}

    return app
