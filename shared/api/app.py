"""Builds the FastAPI app of one function (or, locally, of all of them)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from shared.api.errors import install_error_handlers
from shared.api.middleware import JSON_BODY_LIMIT, GuardMiddleware

API_PREFIX = "/api/v1"


def create_app(
    *routers: APIRouter, title: str = "WeChat mini-program login", max_body_bytes: int = JSON_BODY_LIMIT
) -> FastAPI:
    """An app serving `routers` under /api/v1, answering every status in the envelope."""
    app = FastAPI(title=title, version="1.0.0")
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, max_body_bytes=max_body_bytes)
    return app
