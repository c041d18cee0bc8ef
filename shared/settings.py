"""Typed settings, read from the environment once per process."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.deadline import DEFAULT_BUDGET_S, MAX_BUDGET_S

logger = logging.getLogger(__name__)

LOCAL_STAGE = "local"
# Locally (`make dev`, the tests) no function timeout bounds a request, and many requests share one
# process on a shared machine: a longer budget may be set there, never in a deployed stage.
LOCAL_MAX_BUDGET_S = 60.0
MIN_JWT_SECRET_BYTES = 32
JWT_ALGORITHMS = ("HS256", "RS256", "ES256")
STORAGE_BACKENDS = ("dynamodb", "mysql")


@dataclass(frozen=True)
class Settings:
    """Every setting of the contract. `problems` names the settings that are missing or unsafe."""

    stage: str = LOCAL_STAGE
    wx_appid: str = ""
    wx_secret: str = field(default="", repr=False)
    wx_api_base: str = "https://api.weixin.qq.com"
    wx_timeout_s: float = 3.0
    # One deadline per request for everything it calls or waits for (shared/deadline.py).
    request_budget_s: float = DEFAULT_BUDGET_S
    jwt_secret: bytes = field(default=b"", repr=False)
    jwt_previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    jwt_algorithm: str = "HS256"
    jwt_private_key: bytes = field(default=b"", repr=False)  # PEM; RS256/ES256 only
    jwt_previous_public_keys: tuple[bytes, ...] = ()  # PEMs that still verify (and are published)
    jwt_issuer: str = "wx-login"
    jwt_audience: str = ""
    jwt_leeway_s: int = 30
    access_token_ttl: int = 604800
    refresh_token_ttl: int = 2592000
    users_table: str = "wx-login-users-local"
    sessions_table: str = "wx-login-sessions-local"
    cache_table: str = "wx-login-cache-local"
    dynamodb_endpoint: str | None = None
    # Which adapter of shared/storage serves the domain: "dynamodb" (AWS) or "mysql" (Tencent TDSQL-C).
    storage: str = "dynamodb"
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = ""
    mysql_password: str = field(default="", repr=False)
    mysql_database: str = ""
    mysql_connect_timeout_s: float = 3.0
    aws_region: str = "us-east-1"
    session_key_encryption_key: bytes = field(default=b"", repr=False)
    # Avatar uploads (only the avatar function needs them; it reports them missing itself).
    avatar_bucket: str = ""
    avatar_base_url: str = ""
    avatar_s3_endpoint: str | None = None
    # Login abuse limits (shared/ratelimit.py); 0 turns a limit off.
    login_limit_per_openid: int = 10
    login_failures_per_ip: int = 30
    rate_limit_window_s: int = 60
    problems: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.stage == LOCAL_STAGE


def _number(
    env: Mapping[str, str], name: str, default: float, problems: list[str], *, low: float, high: float
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails too
        problems.append(name)
        return default
    return value


def _whole(
    env: Mapping[str, str], name: str, default: int, problems: list[str], *, low: int, high: int
) -> int:
    value = float(_number(env, name, default, problems, low=low, high=high))
    if not value.is_integer():
        problems.append(name)
        return default
    return int(value)


def _encryption_key(raw: str, problems: list[str]) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        problems.append("SESSION_KEY_ENCRYPTION_KEY")
    return key


def _asymmetric_keys(
    env: Mapping[str, str], algorithm: str, local: bool, problems: list[str]
) -> tuple[bytes, tuple[bytes, ...]]:
    """JWT_PRIVATE_KEY (a PEM that fits JWT_ALGORITHM) and JWT_PREVIOUS_PUBLIC_KEYS (PEMs)."""
    raw_private = env.get("JWT_PRIVATE_KEY", "").strip()
    raw_previous = env.get("JWT_PREVIOUS_PUBLIC_KEYS", "").strip()
    if algorithm == "HS256":
        # A private key next to HS256 is staged for a switch to RS256/ES256 (SSM first, then the
        # deploy that flips JWT_ALGORITHM): unused until then, and never a reason to stop serving.
        raw_private = ""
        if not raw_previous:
            return b"", ()
    from shared import jwk  # cryptography's asymmetric code is only loaded when it is used

    private = b""
    if raw_private:
        try:
            pem = jwk.normalize_pem(raw_private)
            jwk.load_private_key(pem, algorithm)
            private = pem
        except ValueError:
            problems.append("JWT_PRIVATE_KEY")
    elif algorithm != "HS256":
        if local:
            # A fresh key pair per process, like the local JWT_SECRET.
            private = jwk.generate_private_key_pem(algorithm)
        else:
            problems.append("JWT_PRIVATE_KEY")

    previous: tuple[bytes, ...] = ()
    if raw_previous:
        try:
            previous = tuple(jwk.split_pems(raw_previous))
            for pem in previous:
                jwk.load_public_key(pem)
        except ValueError:
            problems.append("JWT_PREVIOUS_PUBLIC_KEYS")
            previous = ()
    return private, previous


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

    algorithm = env.get("JWT_ALGORITHM", "").strip().upper() or "HS256"
    if algorithm not in JWT_ALGORITHMS:
        problems.append("JWT_ALGORITHM")
        algorithm = "HS256"
    jwt_secret = env.get("JWT_SECRET", "").encode()
    if not jwt_secret and local and algorithm == "HS256":
        # A random secret per process: tokens do not survive a restart of `make dev`, by design.
        jwt_secret = secrets.token_bytes(32)
    elif len(jwt_secret) < MIN_JWT_SECRET_BYTES and (jwt_secret or algorithm == "HS256"):
        # With RS256/ES256 the secret is optional: it only verifies tokens issued before the switch.
        problems.append("JWT_SECRET")
    # Like JWT_SECRET, each older secret is its bytes as given (no trimming), so a rotated secret
    # keeps verifying exactly the tokens it signed.
    previous = tuple(s.encode() for s in env.get("JWT_PREVIOUS_SECRETS", "").split(",") if s)
    if any(len(s) < MIN_JWT_SECRET_BYTES for s in previous):
        problems.append("JWT_PREVIOUS_SECRETS")

    private_key, previous_public = _asymmetric_keys(env, algorithm, local, problems)

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

    avatar_base_url = env.get("AVATAR_BASE_URL", "").strip().rstrip("/")
    if local and not avatar_base_url:
        # The dev server's own route for its in-memory bucket (local/devserver.py).
        avatar_base_url = f"http://127.0.0.1:{env.get('PORT', '').strip() or 8000}/local-avatars"
    if avatar_base_url and not local and not avatar_base_url.startswith("https://"):
        problems.append("AVATAR_BASE_URL")

    storage = env.get("STORAGE", "").strip().lower() or "dynamodb"
    if storage not in STORAGE_BACKENDS:
        problems.append("STORAGE")
        storage = "dynamodb"
    mysql_user = env.get("MYSQL_USER", "").strip()
    mysql_database = env.get("MYSQL_DATABASE", "").strip()
    if storage == "mysql" and not local:
        problems += [
            name
            for name, value in (("MYSQL_USER", mysql_user), ("MYSQL_DATABASE", mysql_database))
            if not value
        ]

    year = 366 * 86400

    return Settings(
        stage=stage,
        wx_appid=appid,
        wx_secret=secret,
        wx_api_base=api_base,
        wx_timeout_s=_number(env, "WX_TIMEOUT_S", 3.0, problems, low=0.1, high=10),
        request_budget_s=_number(
            env,
            "REQUEST_BUDGET_S",
            DEFAULT_BUDGET_S,
            problems,
            low=0.5,
            high=LOCAL_MAX_BUDGET_S if local else MAX_BUDGET_S,
        ),
        jwt_secret=jwt_secret,
        jwt_previous_secrets=previous,
        jwt_algorithm=algorithm,
        jwt_private_key=private_key,
        jwt_previous_public_keys=previous_public,
        jwt_issuer=env.get("JWT_ISSUER", "").strip() or "wx-login",
        jwt_audience=env.get("JWT_AUDIENCE", "").strip() or appid,
        jwt_leeway_s=_whole(env, "JWT_LEEWAY_S", 30, problems, low=0, high=300),
        access_token_ttl=_whole(env, "ACCESS_TOKEN_TTL", 604800, problems, low=1, high=year),
        refresh_token_ttl=_whole(env, "REFRESH_TOKEN_TTL", 2592000, problems, low=1, high=year),
        users_table=env.get("USERS_TABLE", "").strip() or f"wx-login-users-{stage}",
        sessions_table=env.get("SESSIONS_TABLE", "").strip() or f"wx-login-sessions-{stage}",
        cache_table=env.get("CACHE_TABLE", "").strip() or f"wx-login-cache-{stage}",
        dynamodb_endpoint=env.get("DYNAMODB_ENDPOINT", "").strip() or None,
        storage=storage,
        mysql_host=env.get("MYSQL_HOST", "").strip() or "127.0.0.1",
        mysql_port=_whole(env, "MYSQL_PORT", 3306, problems, low=1, high=65535),
        mysql_user=mysql_user or ("root" if local else ""),
        mysql_password=env.get("MYSQL_PASSWORD", ""),
        mysql_database=mysql_database or (f"wx_login_{stage}" if local else ""),
        mysql_connect_timeout_s=_number(env, "MYSQL_CONNECT_TIMEOUT_S", 3.0, problems, low=0.1, high=10),
        aws_region=env.get("AWS_REGION", "").strip()
        or env.get("AWS_DEFAULT_REGION", "").strip()
        or "us-east-1",
        session_key_encryption_key=encryption_key,
        avatar_bucket=env.get("AVATAR_BUCKET", "").strip() or (f"wx-login-avatars-{stage}" if local else ""),
        avatar_base_url=avatar_base_url,
        avatar_s3_endpoint=env.get("AVATAR_S3_ENDPOINT", "").strip() or None,
        login_limit_per_openid=_whole(env, "LOGIN_LIMIT_PER_OPENID", 10, problems, low=0, high=10_000),
        login_failures_per_ip=_whole(env, "LOGIN_FAILURE_LIMIT_PER_IP", 30, problems, low=0, high=1_000_000),
        rate_limit_window_s=_whole(env, "RATE_LIMIT_WINDOW_S", 60, problems, low=1, high=3600),
        problems=tuple(dict.fromkeys(problems)),
    )


# A misconfigured instance (e.g. SSM briefly unreachable at cold start) looks again this often,
# instead of answering SERVER_MISCONFIGURED until Lambda recycles it.
RETRY_PROBLEMS_AFTER_S = 60.0
_current: Settings | None = None
_loaded_at = 0.0


def get_settings() -> Settings:
    """The process-wide settings, read once (secrets from SSM by name, see shared.ssm_params).

    Settings with problems are read again at most once a minute; the names (never values) of the
    problem settings are logged when they first appear or change.
    """
    global _current, _loaded_at
    if _current is not None and (
        not _current.problems or time.monotonic() - _loaded_at < RETRY_PROBLEMS_AFTER_S
    ):
        return _current
    from shared.ssm_params import resolve_ssm_env  # botocore: only once per cold start

    settings = load_settings({**os.environ, **resolve_ssm_env(os.environ)})
    if settings.problems and (_current is None or _current.problems != settings.problems):
        logger.error("server misconfigured: %s", ", ".join(settings.problems))
    _current, _loaded_at = settings, time.monotonic()
    return settings


def reset_settings_cache() -> None:
    """Forget the process-wide settings (tests that change the environment)."""
    global _current
    _current = None
