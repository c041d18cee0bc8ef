"""POST /auth/wx-login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.api.client_ip import ClientIp
from shared.api.deps import SettingsDep, StorageDep
from shared.api.envelope import success
from shared.api.schemas import STORAGE, WECHAT, Envelope, LoginData, LoginRequest, error_responses
from shared.api.wechat_deps import AccessTokensDep, wechat_client
from shared.errors import Reason
from shared.login import login
from shared.wechat import WeChatClient

__all__ = ["router", "wechat_client"]

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/wx-login",
    response_model=Envelope[LoginData],
    responses=error_responses(Reason.WECHAT_CODE_INVALID, Reason.RATE_LIMITED, *WECHAT, *STORAGE),
)
def wx_login(
    body: LoginRequest,
    settings: SettingsDep,
    store: StorageDep,
    wechat: Annotated[WeChatClient, Depends(wechat_client)],
    tokens: AccessTokensDep,
    ip: ClientIp,
) -> JSONResponse:
    """Log in with the code from `wx.login()`; answers our access and refresh tokens.

    With `phoneCode` the phone is bound in the same tap; if that fails the login still succeeds and
    `data.phone_error` says why (e.g. PHONE_CODE_INVALID).
    """
    answer = login(
        settings,
        store,
        wechat,
        code=body.code,
        nickname=body.nickName,
        avatar=body.avatarUrl,
        phone_code=body.phoneCode,
        tokens=tokens,
        client_ip=ip,
    )
    return success(answer)
