"""Typed settings, read from the environment once per process."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

logger = logging.getLogger(__name__)

LOCAL_STAGE = "local"
MIN_JWT_SECRET_BYTES = 32


@dataclass(frozen=True)
class Settings:
    """Every setting of the contract. `problems` names the settings that are missing or unsafe."""

    stage: str = LOCAL_STAGE
    wx_appid: str = ""
    wx_secret: str = field(default="", repr=False)
    wx_api_base: str = "https://api.weixin.qq.com"
    wx_timeout_s: float = 3.0
    jwt_secret: bytes = field(default=b"", repr=False)
    jwt_previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    jwt_issuer: str = "wx-login"
    jwt_audience: str = ""
    jwt_leeway_s: int = 30
    access_token_ttl: int = 604800
    refresh_token_ttl: int = 2592000
    users_table: str = "wx-login-users-local"
    sessions_table: str = "wx-login-sessions-local"
    cache_table: str = "wx-login-cache-local"
    dynamodb_endpoint: str | None = None
    aws_region: str = "us-east-1"
    session_key_encryption_key: bytes = field(default=b"", repr=False)
    problems: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.stage == LOCAL_STAGE


def _int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(name)
        return default
    if value <= 0:
        problems.append(name)
        return default
    return value


def _float(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 10:
        problems.append(name)
        return default
    return value


def _encryption_key(raw: str, problems: list[str]) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        problems.append("SESSION_KEY_ENCRYPTION_KEY")
    return key


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from an environment mapping. Never raises: problems are collected by name."""
    env = os.environ if env is None else env
    problems: list[str] = []
    stage = env.get("STAGE", "").strip() or LOCAL_STAGE
    local = stage == LOCAL_STAGE

    appid = env.get("WX_APPID", "").strip()
    secret = env.get("WX_SECRET", "").strip()
    if not local:
        problems += [name for name, value in (("WX_APPID", appid), ("WX_SECRET", secret)) if not value]
    if local and not appid:
        appid = "wx-local-simulator"

    jwt_secret = env.get("JWT_SECRET", "").encode()
    if not jwt_secret and local:
        # A random secret per process: tokens do not survive a restart of `make dev`, by design.
        jwt_secret = secrets.token_bytes(32)
    elif len(jwt_secret) < MIN_JWT_SECRET_BYTES:
        problems.append("JWT_SECRET")
    previous = tuple(s.strip().encode() for s in env.get("JWT_PREVIOUS_SECRETS", "").split(",") if s.strip())
    if any(len(s) < MIN_JWT_SECRET_BYTES for s in previous):
        problems.append("JWT_PREVIOUS_SECRETS")

    raw_key = env.get("SESSION_KEY_ENCRYPTION_KEY", "").strip()
    if raw_key:
        encryption_key = _encryption_key(raw_key, problems)
    elif local:
        encryption_key = secrets.token_bytes(32)
    else:
        encryption_key = b""
        problems.append("SESSION_KEY_ENCRYPTION_KEY")

    api_base = env.get("WX_API_BASE", "").strip().rstrip("/") or "https://api.weixin.qq.com"
    if not local and not api_base.startswith("https://"):
        problems.append("WX_API_BASE")

    access_ttl = _int(env, "ACCESS_TOKEN_TTL", 604800, problems)
    refresh_ttl = _int(env, "REFRESH_TOKEN_TTL", 2592000, problems)
    leeway_raw = env.get("JWT_LEEWAY_S", "").strip()
    leeway = 30
    if leeway_raw:
        if leeway_raw.isdigit() and int(leeway_raw) <= 300:
            leeway = int(leeway_raw)
        else:
            problems.append("JWT_LEEWAY_S")

    return Settings(
        stage=stage,
        wx_appid=appid,
        wx_secret=secret,
        wx_api_base=api_base,
        wx_timeout_s=_float(env, "WX_TIMEOUT_S", 3.0, problems),
        jwt_secret=jwt_secret,
        jwt_previous_secrets=previous,
        jwt_issuer=env.get("JWT_ISSUER", "").strip() or "wx-login",
        jwt_audience=env.get("JWT_AUDIENCE", "").strip() or appid,
        jwt_leeway_s=leeway,
        access_token_ttl=access_ttl,
        refresh_token_ttl=refresh_ttl,
        users_table=env.get("USERS_TABLE", "").strip() or f"wx-login-users-{stage}",
        sessions_table=env.get("SESSIONS_TABLE", "").strip() or f"wx-login-sessions-{stage}",
        cache_table=env.get("CACHE_TABLE", "").strip() or f"wx-login-cache-{stage}",
        dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT", "").strip() or None,
        aws_region=env.get("AWS_REGION", "").strip()
        or env.get("AWS_DEFAULT_REGION", "").strip()
        or "us-east-1",
        session_key_encryption_key=encryption_key,
        problems=tuple(dict.fromkeys(problems)),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Logs the names (never values) of unsafe settings."""
    settings = load_settings()
    if settings.problems:
        logger.error("server misconfigured: %s", ", ".join(settings.problems))
    return settings
