"""Access tokens (JWT via PyJWT) and opaque refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from shared.errors import Reason, ServiceError
from shared.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "sid", "iss", "aud")


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of one of our access tokens."""

    user_id: int
    openid: str
    sid: str
    expires_at: int


@dataclass(frozen=True)
class KeyRing:
    """The signing key and every key that still verifies, indexed by `kid`."""

    signing_kid: str
    verify_keys: dict[str, bytes]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        keys = {_kid(secret): secret for secret in (settings.jwt_secret, *settings.jwt_previous_secrets)}
        return cls(signing_kid=_kid(settings.jwt_secret), verify_keys=keys)


def _kid(secret: bytes) -> str:
    # A short public fingerprint of the secret: lets verification pick the key without trying each.
    return hashlib.sha256(b"kid:" + secret).hexdigest()[:16]


def issue_access_token(
    settings: Settings, keys: KeyRing, *, user_id: int, openid: str, nickname: str, sid: str, now: float
) -> str:
    """Sign an access token for a session."""
    issued_at = int(now)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "openid": openid,
        "nickname": nickname,
        "sid": sid,
        "iat": issued_at,
        "exp": issued_at + settings.access_token_ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims, keys.verify_keys[keys.signing_kid], algorithm=ALGORITHM, headers={"kid": keys.signing_kid}
    )


def _invalid(message: str = "无效的访问令牌") -> ServiceError:
    return ServiceError(Reason.TOKEN_INVALID, message)


def verify_access_token(
    settings: Settings, keys: KeyRing, token: str, *, allow_expired: bool = False
) -> AccessClaims:
    """Verify signature, algorithm, kid, iss, aud and required claims; raise TOKEN_INVALID/EXPIRED."""
    if len(token) > 4096:
        raise _invalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid() from exc
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or kid not in keys.verify_keys:
        raise _invalid()
    try:
        claims = jwt.decode(
            token,
            keys.verify_keys[kid],
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": not allow_expired},
        )
    except jwt.ExpiredSignatureError as exc:
        raise ServiceError(Reason.TOKEN_EXPIRED, "访问令牌已过期, 请刷新") from exc
    except jwt.PyJWTError as exc:
        raise _invalid() from exc
    return _claims(claims)


def _claims(claims: dict[str, Any]) -> AccessClaims:
    sub, sid, openid, exp = claims.get("sub"), claims.get("sid"), claims.get("openid"), claims.get("exp")
    if not (isinstance(sub, str) and sub.isdigit() and len(sub) < 20):
        raise _invalid()
    if not (isinstance(sid, str) and sid and isinstance(openid, str) and openid):
        raise _invalid()
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise _invalid()
    return AccessClaims(user_id=int(sub), openid=openid, sid=sid, expires_at=exp)


# Refresh tokens are "<sid>.<secret>": the sid finds the session in one read; only hashes are stored.
# The first secret is 256 random bits; each rotation derives the next one as HMAC(chain_key, previous),
# so a caller who still holds the previous token inside the grace window can be handed the session's
# current token again without it ever being stored.


def new_session_id() -> str:
    """A random, URL-safe session id."""
    return secrets.token_urlsafe(16)


def new_refresh_token(sid: str) -> str:
    """A fresh refresh token for a new session."""
    return f"{sid}.{secrets.token_urlsafe(32)}"


def next_refresh_token(chain_key: bytes, token: str) -> str:
    """The token that follows `token` in its session's rotation chain."""
    sid = token.partition(".")[0]
    digest = hmac.new(chain_key, token.encode(), hashlib.sha256).digest()
    return f"{sid}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def refresh_token_session(token: str) -> str | None:
    """The session id a well-formed refresh token names, or None when it is malformed."""
    sid, dot, secret = token.partition(".")
    if not dot or not (16 <= len(sid) <= 64) or len(secret) != 43:
        return None
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if not set(sid) <= allowed or not set(secret) <= allowed:
        return None
    return sid
