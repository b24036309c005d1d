"""Import paths for ASGI servers: ``core.asgi:create_app_from_env`` (factory)."""

from fastapi import FastAPI

from core.app import create_app


def create_app_from_env() -> FastAPI:
    """Build the app from ``$FASTPLUG_SETTINGS`` and ``$FASTPLUG_ENV`` (for uvicorn
    ``--factory``, ``--reload`` and gunicorn workers)."""
    return create_app()
