"""FastAPI dependencies: settings and the bearer-authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from shared.auth import Principal, authenticate
from shared.errors import Reason, ServiceError
from shared.settings import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]


def bearer_token(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or TOKEN_MISSING."""
    token = optional_bearer_token(authorization)
    if token is None:
        raise ServiceError(Reason.TOKEN_MISSING, "缺少访问令牌 (Authorization: Bearer <token>)")
    return token


def optional_bearer_token(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str | None:
    """The bearer token when the header carries one."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal(settings: SettingsDep, token: Annotated[str, Depends(bearer_token)]) -> Principal:
    """The caller of an authenticated route, with its session checked live."""
    return authenticate(settings, token)


BearerToken = Annotated[str, Depends(bearer_token)]
OptionalBearerToken = Annotated[str | None, Depends(optional_bearer_token)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
