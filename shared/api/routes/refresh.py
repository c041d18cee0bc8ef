"""POST /auth/refresh."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.api.deps import OptionalBearerToken, SettingsDep, StorageDep
from shared.api.envelope import success
from shared.api.schemas import (
    BEARER,
    STORAGE,
    AccessTokenData,
    Envelope,
    RefreshRequest,
    TokenPairData,
    error_responses,
)
from shared.auth import refresh_with_access_token, refresh_with_refresh_token
from shared.errors import Reason, ServiceError

router = APIRouter(tags=["auth"])


# A refresh token in the body answers a new pair; a bearer access token alone, a new access token.
@router.post(
    "/auth/refresh",
    response_model=Envelope[TokenPairData | AccessTokenData],
    responses=error_responses(*BEARER, Reason.REFRESH_TOKEN_INVALID, Reason.REFRESH_TOKEN_REUSED, *STORAGE),
    # The bearer token is one of two ways: a refresh token in the body needs none.
    openapi_extra={"security": [{}]},
)
def refresh(
    settings: SettingsDep,
    store: StorageDep,
    access_token: OptionalBearerToken,
    body: RefreshRequest | None = None,
) -> JSONResponse:
    """Rotate a refresh token (body), or renew the access token of a live session (bearer only: the
    session's latest access token; an older one revokes the session, REFRESH_TOKEN_REUSED)."""
    if body is not None:
        return success(refresh_with_refresh_token(settings, store, body.refresh_token))
    if access_token is None:
        raise ServiceError(Reason.TOKEN_MISSING, "缺少刷新令牌或访问令牌")
    return success(refresh_with_access_token(settings, store, access_token))
