"""WeChat server API client: bounded retries and errcode mapping, shared by every WeChat call."""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared import deadline
from shared.errors import Reason, ServerMisconfigured, ServiceError
from shared.settings import Settings

logger = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and WeChat's URLs carry the app secret and the user's code.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_ATTEMPTS = 3
BACKOFF_S = (0.1, 0.3)
# Every attempt, backoff included, ends this long before the request's deadline: the storage writes
# that follow a WeChat call (a login stores its user, phone and session after the exchange; a few
# DynamoDB calls) keep their time, so a code spent at WeChat is not lost to a slow WeChat elsewhere.
STORAGE_RESERVE_S = 1.0
# No attempt starts with less time than this: it could spend a single-use code and lose the answer.
MIN_ATTEMPT_S = 0.3
OUT_OF_TIME = "请求超时"
# WeChat's answers are well under 1 KiB; anything this big is not one of them.
MAX_BODY_BYTES = 64 * 1024

CODE_USED = 40163
CODE_REJECTED = {
    40029: "invalid code",
    40163: "code been used",
    41008: "missing code",
    40226: "high risk user",
}
RATE_LIMITED = 45011
SYSTEM_BUSY = -1
CREDENTIAL_ERRORS = {40013: "WX_APPID", 40125: "WX_SECRET"}


class CodeRejected(ServiceError):
    """WeChat rejected a `wx.login` code; `errcode` says why (40163: already used)."""

    def __init__(self, errcode: int) -> None:
        super().__init__(
            Reason.WECHAT_CODE_INVALID, f"微信登录失败: {CODE_REJECTED[errcode]} (错误码: {errcode})"
        )
        self.errcode = errcode


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


@dataclass(frozen=True)
class Answer:
    """WeChat's decoded JSON answer (its errcode not yet judged) after the bounded retries."""

    body: dict[str, Any]
    # True when an earlier attempt may have reached WeChat: a single-use code may read "used" now.
    retried_after_reaching: bool = False

    @property
    def errcode(self) -> int:
        return errcode_of(self.body)


def request_json(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    json: dict[str, Any] | None = None,
) -> Answer:
    """Call WeChat with at most 3 attempts within the request's deadline, retrying -1, 5xx and transport
    faults; each attempt waits at most `timeout_s`.

    Answers the first JSON body whose errcode is not -1 (the caller maps it); raises WECHAT_UNAVAILABLE
    when every attempt failed, or at once on an answer that is not WeChat's JSON, or when too little
    time is left for an attempt (before anything is sent, so no code is spent).
    """
    limit = deadline.current()
    reached_wechat = False
    failure = OUT_OF_TIME
    for attempt in range(MAX_ATTEMPTS):
        remaining = time_for_wechat(limit)
        if remaining < MIN_ATTEMPT_S:
            if attempt == 0:
                logger.warning("wechat call to %s not started: the request's deadline is too close", path)
            break
        result = _attempt(http, method, path, params, json, timeout=min(timeout_s, remaining))
        if result.body is not None:
            if errcode_of(result.body) != SYSTEM_BUSY:
                return Answer(result.body, retried_after_reaching=reached_wechat)
            failure = f"错误码: {SYSTEM_BUSY}"
        else:
            failure = result.failure or "unknown"
        reached_wechat = reached_wechat or result.may_have_reached
        logger.warning("wechat attempt %d at %s failed: %s", attempt + 1, path, failure)
        if attempt + 1 < MAX_ATTEMPTS:
            time.sleep(min(BACKOFF_S[attempt], time_for_wechat(limit)))
    raise wechat_unavailable(failure)


def time_for_wechat(limit: deadline.Deadline) -> float:
    """Seconds WeChat may still take before `limit` (a request's deadline), less the storage reserve."""
    return max(0.0, limit.remaining() - STORAGE_RESERVE_S)


def raise_if_out_of_time() -> None:
    """WECHAT_UNAVAILABLE now when the request's deadline leaves no time for a WeChat attempt (spares
    the storage calls that would only prepare one)."""
    if time_for_wechat(deadline.current()) < MIN_ATTEMPT_S:
        raise wechat_unavailable(OUT_OF_TIME)


def _attempt(
    http: httpx.Client,
    method: str,
    path: str,
    params: dict[str, str] | None,
    json: dict[str, Any] | None,
    *,
    timeout: float,
) -> _Attempt:
    ends_at = time.monotonic() + timeout
    try:
        with http.stream(method, path, params=params, json=json, timeout=timeout) as response:
            if response.status_code >= 500:
                return _Attempt(None, f"HTTP {response.status_code}")
            content = _read_body(response, ends_at)
    except httpx.ConnectError:
        return _Attempt(None, "connection refused", may_have_reached=False)
    except httpx.TimeoutException:
        return _Attempt(None, "timeout")
    except httpx.TransportError:
        return _Attempt(None, "timeout" if time.monotonic() >= ends_at else "connection error")
    try:
        body = jsonlib.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Not WeChat's JSON (an HTML error page, a proxy's answer): not retried unless 5xx.
        raise wechat_unavailable(f"HTTP {response.status_code} non-JSON answer")
    return _Attempt(body, None)


def _read_body(response: httpx.Response, ends_at: float) -> bytes:
    """The whole body by `ends_at`, or ReadTimeout. httpx's read timeout bounds each read, not the body:
    a peer trickling a byte at a time would hold us for ever. At `ends_at` the socket is shut down
    under the blocked read (a shut-down socket wakes it at once), and the connection is not reused."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    lock = threading.Lock()
    done = False

    def cut_off() -> None:
        with lock:
            if not done and isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(max(0.0, ends_at - time.monotonic()), cut_off)
    watchdog.daemon = True
    if sock is not None:
        watchdog.start()
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_BODY_BYTES or time.monotonic() >= ends_at:
                raise httpx.ReadTimeout("answer too slow or too large", request=response.request)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        with lock:
            done = True
        watchdog.cancel()


def new_http_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The pooled HTTP client for WeChat's API; one per process, shared by every WeChat caller."""
    return httpx.Client(
        base_url=settings.wx_api_base,
        timeout=settings.wx_timeout_s,
        transport=transport,
        headers={"User-Agent": "wx-login/1"},
    )


class WeChatClient:
    """A reusable client for WeChat's server API; build it once per process."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self._settings = settings
        self._http = new_http_client(settings, transport)

    @property
    def http(self) -> httpx.Client:
        """The pooled HTTP client, for other WeChat callers of this process (e.g. the access_token)."""
        return self._http

    @property
    def settings(self) -> Settings:
        return self._settings

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
        answer = request_json(
            self._http, "GET", "/sns/jscode2session", params=params, timeout_s=self._settings.wx_timeout_s
        )
        if answer.errcode == 40163 and answer.retried_after_reaching:
            # An earlier attempt may have spent the code before failing on the way back.
            raise wechat_unavailable("40163 after a retry")
        raise_for_errcode(answer.errcode)
        body = answer.body
        openid, session_key = body.get("openid"), body.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str) or not session_key:
            raise wechat_unavailable("incomplete answer")
        unionid = body.get("unionid")
        return CodeSession(openid, session_key, unionid if isinstance(unionid, str) and unionid else None)


def errcode_of(body: dict[str, Any]) -> int:
    """WeChat's errcode of an answer (0 when absent; -2 when it is not an integer)."""
    errcode = body.get("errcode", 0)
    return errcode if isinstance(errcode, int) and not isinstance(errcode, bool) else -2


def wechat_unavailable(detail: str) -> ServiceError:
    """WECHAT_UNAVAILABLE with a detail (an errcode, a status) that carries no secret."""
    return ServiceError(Reason.WECHAT_UNAVAILABLE, f"微信服务暂不可用, 请稍后重试 ({detail})")


def raise_for_credentials(errcode: int) -> None:
    """SERVER_MISCONFIGURED when WeChat rejects our appid or secret (logged by name, never value)."""
    if errcode in CREDENTIAL_ERRORS:
        logger.error("wechat rejected our credentials: errcode %d (%s)", errcode, CREDENTIAL_ERRORS[errcode])
        raise ServerMisconfigured([CREDENTIAL_ERRORS[errcode]])


def raise_for_rate_limit(errcode: int) -> None:
    """WECHAT_RATE_LIMITED on 45011."""
    if errcode == RATE_LIMITED:
        raise ServiceError(
            Reason.WECHAT_RATE_LIMITED, f"微信登录请求过于频繁, 请稍后重试 (错误码: {errcode})"
        )


def raise_for_errcode(errcode: int) -> None:
    """Map a jscode2session errcode to the contract's reasons; 0 passes."""
    if errcode == 0:
        return
    if errcode in CODE_REJECTED:
        raise CodeRejected(errcode)
    raise_for_rate_limit(errcode)
    raise_for_credentials(errcode)
    raise wechat_unavailable(f"错误码: {errcode}")
