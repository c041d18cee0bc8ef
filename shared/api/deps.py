"""FastAPI dependencies: settings, storage and the bearer-authenticated caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

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


async def bearer_token(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or TOKEN_MISSING."""
    token = _parse_bearer(authorization)
    if token is None:
        raise ServiceError(Reason.TOKEN_MISSING, "缺少访问令牌 (Authorization: Bearer <token>)")
    return token


async def optional_bearer_token(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str | None:
    """The bearer token when the header carries one."""
    return _parse_bearer(authorization)


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
OptionalBearerToken = Annotated[str | None, Depends(optional_bearer_token)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
