"""Builds the FastAPI app of one function (or, locally, of all of them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from shared.api.errors import install_error_handlers
from shared.api.middleware import JSON_BODY_LIMIT, GuardMiddleware
from shared.logs import configure_logging

API_PREFIX = "/api/v1"

# At import, before a function module imports its routes: lines logged while they load are JSON too.
configure_logging()

DESCRIPTION = """Every answer is JSON in the envelope: `{"code": 200, "message", "data", "timestamp"}`,
or for an error `{"code", "message", "error", "reason", "timestamp"}` with HTTP status == `code`.
Clients branch on `reason`. Each operation lists the statuses and reasons it answers; besides, an
unknown path (a trailing slash too) is 404 `NOT_FOUND`, and a known path with another method is 405
`METHOD_NOT_ALLOWED` with an `Allow` header naming every method of the path.

Authenticated operations take `Authorization: Bearer <access_token>` (the `access_token` of
`wx-login`): "Authorize" above sends it."""


class Api(FastAPI):
    """FastAPI whose OpenAPI document says what is sent: no 422 (validation errors are answered
    400 INVALID_REQUEST in the envelope, listed per operation)."""

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document, without FastAPI's 422 answers and their schemas."""
        if self.openapi_schema is None:
            document = super().openapi()
            for path_item in document.get("paths", {}).values():
                for operation in path_item.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        return self.openapi_schema or {}


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
    # No redirect from `/path/` to `/path` (a bare 307 outside the envelope): a trailing slash is 404.
    # No /docs or /openapi.json on a deployed function: `make dev` serves them (local/docs.py).
    app = Api(
        title=title,
        version="1.0.0",
        description=DESCRIPTION,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    for router in root_routers:
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, max_body_bytes=max_body_bytes, path_limits=path_limits)
    return app
