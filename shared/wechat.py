"""WeChat server API client: jscode2session with bounded retries and errcode mapping."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.errors import Reason, ServerMisconfigured, ServiceError
from shared.settings import Settings

logger = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and WeChat's URLs carry the app secret and the user's code.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_ATTEMPTS = 3
# Every attempt, backoff included, ends within this budget (API Gateway gives up at 29 s).
TOTAL_BUDGET_S = 9.5
BACKOFF_S = (0.1, 0.3)

CODE_REJECTED = {
    40029: "invalid code",
    40163: "code been used",
    41008: "missing code",
    40226: "high risk user",
}
RATE_LIMITED = 45011
SYSTEM_BUSY = -1
CREDENTIAL_ERRORS = {40013: "WX_APPID", 40125: "WX_SECRET"}


@dataclass(frozen=True)
class CodeSession:
    """What jscode2session tells us about the user behind a `wx.login` code."""

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True)
class _Attempt:
    """What one call to WeChat produced: a decoded JSON body, or the errcode-like cause of failure."""

    body: dict[str, Any] | None
    failure: str | None
    # False only when the request certainly never left (connection refused): the code is unspent.
    may_have_reached: bool = True


class WeChatClient:
    """A reusable client for WeChat's server API; build it once per process."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._http = httpx.Client(
            base_url=settings.wx_api_base,
            timeout=settings.wx_timeout_s,
            transport=transport,
            headers={"User-Agent": "wx-login/1"},
        )

    def close(self) -> None:
        self._http.close()

    def code_to_session(self, code: str) -> CodeSession:
        """Exchange a `wx.login` code for the user's openid and session_key."""
        params = {
            "appid": self._settings.wx_appid,
            "secret": self._settings.wx_secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        body = self._get_with_retries("/sns/jscode2session", params)
        openid, session_key = body.get("openid"), body.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str) or not session_key:
            raise _unavailable("incomplete answer")
        unionid = body.get("unionid")
        return CodeSession(openid, session_key, unionid if isinstance(unionid, str) and unionid else None)

    def _get_with_retries(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        deadline = time.monotonic() + TOTAL_BUDGET_S
        reached_wechat = False
        failure = "unknown"
        for attempt in range(MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                break
            result = self._attempt(path, params, timeout=min(self._settings.wx_timeout_s, remaining))
            if result.body is not None:
                errcode = _errcode(result.body)
                if errcode == 40163 and reached_wechat:
                    # An earlier attempt may have spent the code before failing on the way back.
                    raise _unavailable("40163 after a retry")
                if errcode != SYSTEM_BUSY:
                    _raise_for_errcode(errcode)
                    return result.body
                failure = f"错误码: {SYSTEM_BUSY}"
            else:
                failure = result.failure or "unknown"
            reached_wechat = reached_wechat or result.may_have_reached
            logger.warning("wechat attempt %d failed: %s", attempt + 1, failure)
            if attempt + 1 < MAX_ATTEMPTS:
                time.sleep(min(BACKOFF_S[attempt], max(0.0, deadline - time.monotonic())))
        raise _unavailable(failure)

    def _attempt(self, path: str, params: dict[str, str], *, timeout: float) -> _Attempt:
        try:
            response = self._http.get(path, params=params, timeout=timeout)
        except httpx.ConnectError:
            return _Attempt(None, "connection refused", may_have_reached=False)
        except httpx.TimeoutException:
            return _Attempt(None, "timeout")
        except httpx.TransportError:
            return _Attempt(None, "connection error")
        if response.status_code >= 500:
            return _Attempt(None, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not WeChat's JSON (an HTML error page, a proxy's answer): not retried unless 5xx.
            raise _unavailable(f"HTTP {response.status_code} non-JSON answer")
        return _Attempt(body, None)


def _errcode(body: dict[str, Any]) -> int:
    errcode = body.get("errcode", 0)
    return errcode if isinstance(errcode, int) and not isinstance(errcode, bool) else -2


def _unavailable(detail: str) -> ServiceError:
    return ServiceError(Reason.WECHAT_UNAVAILABLE, f"微信服务暂不可用, 请稍后重试 ({detail})")


def _raise_for_errcode(errcode: int) -> None:
    if errcode == 0:
        return
    if errcode in CODE_REJECTED:
        raise ServiceError(
            Reason.WECHAT_CODE_INVALID, f"微信登录失败: {CODE_REJECTED[errcode]} (错误码: {errcode})"
        )
    if errcode == RATE_LIMITED:
        raise ServiceError(
            Reason.WECHAT_RATE_LIMITED, f"微信登录请求过于频繁, 请稍后重试 (错误码: {errcode})"
        )
    if errcode in CREDENTIAL_ERRORS:
        logger.error("wechat rejected our credentials: errcode %d (%s)", errcode, CREDENTIAL_ERRORS[errcode])
        raise ServerMisconfigured([CREDENTIAL_ERRORS[errcode]])
    raise _unavailable(f"错误码: {errcode}")
