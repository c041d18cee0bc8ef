"""Access tokens (JWT via PyJWT) and opaque refresh tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jwt

from shared import clock, jwk
from shared.errors import Reason, ServiceError
from shared.settings import Settings

HMAC_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "sid", "iss", "aud")
MAX_TOKEN_LENGTH = 4096
# We only ever issue these header members: anything else (jku, x5u, jwk, x5c, crit, b64, ...) is not ours.
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of one of our access tokens."""

    user_id: int
    openid: str
    sid: str
    expires_at: int
    # The token's id: a session renews only by its latest access token (shared/sessions.py).
    jti: str = ""


@dataclass(frozen=True)
class VerifyKey:
    """A key that verifies tokens, bound to the one algorithm it may be used with."""

    algorithm: str
    key: Any = field(repr=False)  # HMAC secret bytes, or a cryptography public key


@dataclass(frozen=True)
class KeyRing:
    """The signing key and every key that still verifies, indexed by `kid`; `public_jwks` are the
    public halves of the asymmetric ones (empty with HS256 alone)."""

    signing_kid: str
    signing_algorithm: str
    signing_key: Any = field(repr=False)
    verify_keys: dict[str, VerifyKey] = field(repr=False)
    public_jwks: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring of JWT_ALGORITHM's signing key, JWT_PREVIOUS_PUBLIC_KEYS and the HMAC secrets."""
        verify: dict[str, VerifyKey] = {}
        signing_key: Any = settings.jwt_secret
        signing_kid = _kid(settings.jwt_secret)
        if settings.jwt_algorithm != HMAC_ALGORITHM:
            # load_settings keeps only a PEM it generated or loaded with the full RSA check: not twice.
            signing_key = jwk.load_private_key(settings.jwt_private_key, settings.jwt_algorithm, checked=True)
            signing_kid = jwk.thumbprint(signing_key.public_key())
            verify[signing_kid] = VerifyKey(settings.jwt_algorithm, signing_key.public_key())
        for pem in settings.jwt_previous_public_keys:
            public = jwk.load_public_key(pem)
            verify.setdefault(jwk.thumbprint(public), VerifyKey(jwk.algorithm_of(public), public))
        for secret in (settings.jwt_secret, *settings.jwt_previous_secrets):
            if secret:
                verify.setdefault(_kid(secret), VerifyKey(HMAC_ALGORITHM, secret))
        jwks = tuple(jwk.public_jwk(v.key) for v in verify.values() if v.algorithm != HMAC_ALGORITHM)
        return cls(signing_kid, settings.jwt_algorithm, signing_key, verify, jwks)


def _kid(secret: bytes) -> str:
    # A short public fingerprint of the secret: lets verification pick the key without trying each.
    return hashlib.sha256(b"kid:" + secret).hexdigest()[:16]


def new_access_jti() -> str:
    """A fresh access-token id (the session records its latest one)."""
    return uuid.uuid4().hex


def access_token_expiry(settings: Settings, now: float, not_after: int | None = None) -> int:
    """When an access token issued at `now` expires: its TTL on, but never past `not_after` (the end of
    its session: a renewal never reaches beyond the session's own expiry)."""
    expires_at = int(now) + settings.access_token_ttl
    return expires_at if not_after is None else min(expires_at, not_after)


def issue_access_token(
    settings: Settings,
    keys: KeyRing,
    *,
    user_id: int,
    openid: str,
    nickname: str,
    sid: str,
    now: float,
    jti: str | None = None,
    not_after: int | None = None,
) -> str:
    """Sign an access token for a session: id `jti` (a fresh one if None), expiring at the latest at
    `not_after` (epoch seconds)."""
    issued_at = int(now)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "openid": openid,
        "nickname": nickname,
        "sid": sid,
        "iat": issued_at,
        "exp": access_token_expiry(settings, now, not_after),
        "jti": jti or new_access_jti(),
    }
    return jwt.encode(
        claims, keys.signing_key, algorithm=keys.signing_algorithm, headers={"kid": keys.signing_kid}
    )


def _invalid(message: str = "无效的访问令牌") -> ServiceError:
    return ServiceError(Reason.TOKEN_INVALID, message)


def verify_access_token(
    settings: Settings, keys: KeyRing, token: str, *, allow_expired: bool = False, now: float | None = None
) -> AccessClaims:
    """Verify shape, kid, the kid's one algorithm, signature, iss, aud, required claims and times.

    Raises only ServiceError: TOKEN_EXPIRED for a token of ours that is only past `exp`, else
    TOKEN_INVALID. `iat` or `nbf` more than the leeway in the future is TOKEN_INVALID."""
    header = _unverified_header(token)
    kid = header.get("kid")
    key = keys.verify_keys.get(kid) if isinstance(kid, str) else None
    # The algorithm comes from the key, never from the token: no alg confusion, no `none`.
    if key is None or header.get("alg") != key.algorithm:
        raise _invalid()
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            # Times are checked below against shared.clock, after everything else.
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise _invalid() from exc
    _check_times(claims, clock.now() if now is None else now, settings.jwt_leeway_s, allow_expired)
    return _claims(claims)


def _unverified_header(token: str) -> dict[str, Any]:
    # Stricter than PyJWT: three base64url segments, JSON objects without duplicate members (parsers
    # that keep the first and the last of two "sub" would disagree), and only the header we issue.
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid()
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise _invalid()
    header, _payload = _json_object(segments[0]), _json_object(segments[1])
    if not set(header) <= _HEADER_MEMBERS or header.get("typ", "JWT") != "JWT":
        raise _invalid()
    return header


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _json_object(segment: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _invalid() from exc
    if not isinstance(value, dict):
        raise _invalid()
    return value


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_times(claims: dict[str, Any], now: float, leeway: int, allow_expired: bool) -> None:
    iat, nbf, exp = claims.get("iat"), claims.get("nbf", 0), claims.get("exp")
    if not (_whole(iat) and _whole(nbf) and _whole(exp)):
        raise _invalid()
    if iat > now + leeway or nbf > now + leeway:
        # We never issue a token from the future: a forgery or a badly wrong clock, not "refresh".
        raise _invalid()
    if not allow_expired and exp <= now - leeway:
        raise ServiceError(Reason.TOKEN_EXPIRED, "访问令牌已过期, 请刷新")


def _claims(claims: dict[str, Any]) -> AccessClaims:
    sub, sid, openid, exp = claims.get("sub"), claims.get("sid"), claims.get("openid"), claims.get("exp")
    # A user id exactly as we write it: ASCII digits (str.isdigit() also accepts other scripts' digits,
    # which int() would read), no sign, no leading zero ("00" would name user 0, "01" user 1).
    if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) < 20 and sub[0] != "0"):
        raise _invalid()
    if not (isinstance(sid, str) and 0 < len(sid) <= 128):
        raise _invalid()
    if not (isinstance(openid, str) and 0 < len(openid) <= 128):
        raise _invalid()
    if not _whole(exp):
        raise _invalid()
    jti = claims.get("jti")
    jti = jti if isinstance(jti, str) and len(jti) <= 128 else ""
    return AccessClaims(user_id=int(sub), openid=openid, sid=sid, expires_at=exp, jti=jti)


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
