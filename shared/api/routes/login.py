"""POST /auth/wx-login."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.api.deps import SettingsDep
from shared.api.envelope import success
from shared.api.schemas import ERROR_RESPONSES, Envelope, LoginData, LoginRequest
from shared.login import login
from shared.settings import get_settings
from shared.wechat import WeChatClient

router = APIRouter(tags=["auth"])


@lru_cache(maxsize=1)
def wechat_client() -> WeChatClient:
    """One WeChat client per process, reused across invocations (connection pooling)."""
    return WeChatClient(get_settings())


@router.post("/auth/wx-login", response_model=Envelope[LoginData], responses=ERROR_RESPONSES)
def wx_login(
    body: LoginRequest,
    settings: SettingsDep,
    wechat: Annotated[WeChatClient, Depends(wechat_client)],
) -> JSONResponse:
    """Log in with the code from `wx.login()`; answers our access and refresh tokens."""
    return success(login(settings, wechat, code=body.code, nickname=body.nickName, avatar=body.avatarUrl))
