"""The service's exceptions: each carries one of the contract's machine-readable reasons."""

from __future__ import annotations

import math
from enum import Enum


class Reason(str, Enum):
    """Stable error reasons of the contract, with the HTTP status each one answers."""

    INVALID_REQUEST = "INVALID_REQUEST"
    WECHAT_CODE_INVALID = "WECHAT_CODE_INVALID"
    WECHAT_RATE_LIMITED = "WECHAT_RATE_LIMITED"
    WECHAT_UNAVAILABLE = "WECHAT_UNAVAILABLE"
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    SESSION_REVOKED = "SESSION_REVOKED"
    REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    PHONE_CODE_INVALID = "PHONE_CODE_INVALID"
    DECRYPT_FAILED = "DECRYPT_FAILED"
    CONTENT_REJECTED = "CONTENT_REJECTED"
    SERVER_MISCONFIGURED = "SERVER_MISCONFIGURED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Not in the contract's table (an addition): our own login abuse limits, with a Retry-After header.
    RATE_LIMITED = "RATE_LIMITED"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[Reason, int] = {
    Reason.INVALID_REQUEST: 400,
    Reason.WECHAT_CODE_INVALID: 401,
    Reason.WECHAT_RATE_LIMITED: 429,
    Reason.WECHAT_UNAVAILABLE: 503,
    Reason.TOKEN_MISSING: 401,
    Reason.TOKEN_EXPIRED: 401,
    Reason.TOKEN_INVALID: 401,
    Reason.SESSION_REVOKED: 401,
    Reason.REFRESH_TOKEN_INVALID: 401,
    Reason.REFRESH_TOKEN_REUSED: 401,
    Reason.PAYLOAD_TOO_LARGE: 413,
    Reason.STORAGE_UNAVAILABLE: 503,
    Reason.PHONE_CODE_INVALID: 400,
    Reason.DECRYPT_FAILED: 400,
    Reason.CONTENT_REJECTED: 400,
    Reason.SERVER_MISCONFIGURED: 500,
    Reason.NOT_FOUND: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.INTERNAL_ERROR: 500,
    Reason.RATE_LIMITED: 429,
}


class ServiceError(Exception):
    """An expected failure, answered in the envelope with its reason and a safe message."""

    def __init__(self, reason: Reason, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.reason.status


class StorageUnavailable(ServiceError):
    """The database (DynamoDB, MySQL) failed, throttled or timed out after bounded retries."""

    def __init__(self, message: str = "存储服务暂不可用, 请稍后重试") -> None:
        super().__init__(Reason.STORAGE_UNAVAILABLE, message)


class ServerMisconfigured(ServiceError):
    """A required setting is missing or unsafe; the message names settings, never values."""

    def __init__(self, setting_names: list[str]) -> None:
        self.setting_names = setting_names
        super().__init__(Reason.SERVER_MISCONFIGURED, "服务配置错误: " + ", ".join(setting_names))


class RateLimited(ServiceError):
    """Our own login limits: 429 RATE_LIMITED with a `Retry-After` header (whole seconds, at least 1)."""

    def __init__(self, retry_after_s: float, message: str = "登录过于频繁") -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            Reason.RATE_LIMITED, f"{message}, 请 {seconds} 秒后重试", headers={"Retry-After": str(seconds)}
        )
