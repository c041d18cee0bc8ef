"""FastAPI dependencies: settings, storage and the bearer-authenticated caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from shared.auth import Principal, authenticate
from shared.errors import Reason, ServiceError
from shared.settings import Settings, get_settings
from shared.storage.base import Storage
from shared.storage.factory import open_storage

# The dependencies below that do no I/O are `async def` only so that FastAPI runs them in the event
# loop: it runs a plain `def` dependency in a worker thread, a hand-off that costs more than the work
# (`make bench`).


async def settings_dependency(request: Request) -> Settings:
    """The settings; an override of `get_settings` (tests) is honoured as FastAPI would honour it."""
    provider: Callable[[], Settings] = request.app.dependency_overrides.get(get_settings, get_settings)
    return provider()


SettingsDep = Annotated[Settings, Depends(settings_dependency)]

_storage: Storage | None = None
_storage_lock = threading.Lock()


def process_storage() -> Storage:
    """The process's storage adapter, built from the settings on first use (it connects lazily), then
    reused by every request: one per function instance."""
    global _storage
    if _storage is None:
        with _storage_lock:
            if _storage is None:
                _storage = open_storage(get_settings())
    return _storage


async def storage() -> Storage:
    """The storage the domain talks to; tests (and `make dev`) override this dependency."""
    return process_storage()


StorageDep = Annotated[Storage, Depends(storage)]


class BearerScheme(SecurityBase):
    """The `Authorization: Bearer <token>` header, declared in OpenAPI as an HTTP bearer scheme (so
    that the /docs page's "Authorize" sends it) and parsed here: a missing or malformed header is
    None, for the routes to answer in the envelope (FastAPI's HTTPBearer would answer 403 itself)."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description="Our access token (wx-login, refresh)")
        self.scheme_name = "bearerAuth"

    async def __call__(self, request: Request) -> str | None:
        return _parse_bearer(request.headers.get("authorization"))


bearer_scheme = BearerScheme()


async def bearer_token(token: Annotated[str | None, Depends(bearer_scheme)]) -> str:
    """The token of an `Authorization: Bearer <token>` header, or TOKEN_MISSING."""
    if token is None:
        raise ServiceError(Reason.TOKEN_MISSING, "缺少访问令牌 (Authorization: Bearer <token>)")
    return token


def _parse_bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal(
    settings: SettingsDep, store: StorageDep, token: Annotated[str, Depends(bearer_token)]
) -> Principal:
    """The caller of an authenticated route, with its session checked live."""
    return authenticate(settings, store, token)


BearerToken = Annotated[str, Depends(bearer_token)]
OptionalBearerToken = Annotated[str | None, Depends(bearer_scheme)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
