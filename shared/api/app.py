"""Builds the FastAPI app of one function (or, locally, of all of them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import APIRouter, FastAPI

from shared.api.errors import install_error_handlers
from shared.api.middleware import JSON_BODY_LIMIT, GuardMiddleware
from shared.logs import configure_logging

API_PREFIX = "/api/v1"

# At import, before a function module imports its routes: lines logged while they load are JSON too.
configure_logging()


def create_app(
    *routers: APIRouter,
    title: str = "WeChat mini-program login",
    max_body_bytes: int = JSON_BODY_LIMIT,
    path_limits: Mapping[str, int] | None = None,
    root_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """An app serving `routers` under /api/v1, answering every status in the envelope.

    Request bodies are limited to `max_body_bytes`, except on the paths of `path_limits` (full paths).
    `root_routers` are served at the root instead (well-known URLs such as /.well-known/jwks.json).
    """
    configure_logging()
    app = FastAPI(title=title, version="1.0.0")
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    for router in root_routers:
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, max_body_bytes=max_body_bytes, path_limits=path_limits)
    return app
