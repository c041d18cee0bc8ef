"""GET /auth/session-check."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.api.deps import CurrentPrincipal, SettingsDep
from shared.api.envelope import success
from shared.api.schemas import BEARER, STORAGE, WECHAT, Envelope, error_responses
from shared.api.session_key_schemas import SessionCheckData
from shared.api.wechat_deps import AccessTokensDep
from shared.session_key import check_session_key

router = APIRouter(tags=["session_key"])


@router.get(
    "/auth/session-check",
    response_model=Envelope[SessionCheckData],
    responses=error_responses(*BEARER, *WECHAT, *STORAGE),
)
def session_check(
    principal: CurrentPrincipal, settings: SettingsDep, tokens: AccessTokensDep
) -> JSONResponse:
    """Whether WeChat still holds the caller's stored session_key valid (a later wx.login replaces it)."""
    return success({"valid": check_session_key(settings, tokens, principal.user)})
