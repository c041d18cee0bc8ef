"""Authenticated requests, token refresh and logout: tokens + sessions, no WeChat."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import clock, logs
from shared.errors import Reason, ServiceError
from shared.keys import jwt_keys, refresh_chain_key
from shared.sessions import (
    ensure_live,
    load_session_and_user,
    load_user,
    renew_access,
    revoke_session,
    rotate_refresh_token,
)
from shared.settings import Settings
from shared.storage.base import Session, Storage, User
from shared.tokens import AccessClaims, access_token_expiry, issue_access_token, verify_access_token
from shared.users import revoke_all_sessions

TOKEN_TYPE = "Bearer"


@dataclass(frozen=True)
class Principal:
    """The caller of an authenticated request: verified claims, live session and current user."""

    claims: AccessClaims
    session: Session
    user: User


@dataclass(frozen=True)
class AccessTokenAnswer:
    """A new access token, in the shape every token answer shares."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int


@dataclass(frozen=True)
class TokenPair(AccessTokenAnswer):
    """A new access token and the refresh token to use next."""

    refresh_token: str = field(repr=False)
    refresh_expires_in: int


def authenticate(settings: Settings, store: Storage, access_token: str) -> Principal:
    """Verify an access token and check its session is live, in one storage round trip."""
    claims = verify_access_token(settings, jwt_keys(settings), access_token)
    logs.bind_openid(claims.openid)
    session, user = load_session_and_user(store, claims.sid, claims.openid)
    ensure_live(session, user, user_id=claims.user_id, now=clock.now())
    return Principal(claims, session, user)


def access_token_answer(settings: Settings, user: User, session: Session, now: float) -> AccessTokenAnswer:
    """The session's latest access token (`session.access_jti`), expiring at the latest with the session."""
    token = issue_access_token(
        settings,
        jwt_keys(settings),
        user_id=user.id,
        openid=user.openid,
        nickname=user.nickname,
        sid=session.sid,
        now=now,
        jti=session.access_jti,
        not_after=session.expires_at,
    )
    expires_in = access_token_expiry(settings, now, session.expires_at) - int(now)
    return AccessTokenAnswer(access_token=token, token_type=TOKEN_TYPE, expires_in=expires_in)


def refresh_with_refresh_token(settings: Settings, store: Storage, refresh_token: str) -> TokenPair:
    """Rotate a refresh token and answer new access and refresh tokens for the same session."""
    now = clock.now()
    issued = rotate_refresh_token(
        store,
        refresh_token,
        chain_key=refresh_chain_key(settings),
        refresh_ttl=settings.refresh_token_ttl,
        now=now,
    )
    session = issued.session
    logs.bind_openid(session.openid)
    user = load_user(store, session.openid)
    ensure_live(session, user, user_id=session.user_id, now=now)
    access = access_token_answer(settings, user, session, now)
    return TokenPair(
        access_token=access.access_token,
        token_type=access.token_type,
        expires_in=access.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=max(0, session.expires_at - int(now)),
    )


def refresh_with_access_token(settings: Settings, store: Storage, access_token: str) -> AccessTokenAnswer:
    """A new access token for the live session of an unexpired access token that is the session's
    latest (see `shared.sessions.renew_access`): two round trips, a read and a conditional write."""
    principal = authenticate(settings, store, access_token)
    now = clock.now()
    session = renew_access(store, principal.session, principal.claims.jti, now=now)
    return access_token_answer(settings, principal.user, session, now)


def _is_live(store: Storage, claims: AccessClaims) -> bool:
    try:
        session, user = load_session_and_user(store, claims.sid, claims.openid)
        ensure_live(session, user, user_id=claims.user_id, now=clock.now())
    except ServiceError as exc:
        if exc.reason is not Reason.SESSION_REVOKED:
            raise
        return False
    return True


def logout(settings: Settings, store: Storage, access_token: str, *, everywhere: bool) -> None:
    """Revoke the token's session (or every session of its user). A token past `exp` may still log out.

    Ending every device takes a live session: the token of a session already over (an old token found
    in a log) ends at most that session, and the answer is the same as for any repeated logout.
    """
    claims = verify_access_token(settings, jwt_keys(settings), access_token, allow_expired=True)
    logs.bind_openid(claims.openid)
    if everywhere and _is_live(store, claims):
        revoke_all_sessions(store, claims.openid, clock.now())
    revoke_session(store, claims.sid, claims.user_id)
