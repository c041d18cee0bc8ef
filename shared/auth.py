"""Authenticated requests, token refresh and logout: tokens + sessions, no WeChat."""

from __future__ import annotations

from dataclasses import dataclass

from shared import clock, logs
from shared.errors import Reason, ServiceError
from shared.keys import jwt_keys, refresh_chain_key
from shared.models import SessionModel, UserModel
from shared.sessions import (
    ensure_live,
    load_session_and_user,
    load_user,
    revoke_session,
    rotate_refresh_token,
)
from shared.settings import Settings
from shared.tokens import AccessClaims, issue_access_token, verify_access_token
from shared.users import revoke_all_sessions


@dataclass(frozen=True)
class Principal:
    """The caller of an authenticated request: verified claims, live session and current user."""

    claims: AccessClaims
    session: SessionModel
    user: UserModel


def authenticate(settings: Settings, access_token: str) -> Principal:
    """Verify an access token and check its session is live, in one DynamoDB round trip."""
    claims = verify_access_token(settings, jwt_keys(settings), access_token)
    logs.bind_openid(claims.openid)
    session, user = load_session_and_user(claims.sid, claims.openid)
    ensure_live(session, user, user_id=claims.user_id, now=clock.now())
    return Principal(claims, session, user)


def access_token_answer(settings: Settings, user: UserModel, sid: str, now: float) -> dict[str, object]:
    """A fresh access token for a session, in the shape every token answer shares."""
    token = issue_access_token(
        settings,
        jwt_keys(settings),
        user_id=int(user.id or 0),
        openid=user.openid,
        nickname=user.nickname or "",
        sid=sid,
        now=now,
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": settings.access_token_ttl}


def refresh_with_refresh_token(settings: Settings, refresh_token: str) -> dict[str, object]:
    """Rotate a refresh token and answer new access and refresh tokens for the same session."""
    now = clock.now()
    issued = rotate_refresh_token(
        refresh_token, chain_key=refresh_chain_key(settings), refresh_ttl=settings.refresh_token_ttl, now=now
    )
    session = issued.session
    logs.bind_openid(session.openid)
    user = load_user(session.openid)
    ensure_live(session, user, user_id=int(session.user_id), now=now)
    return {
        **access_token_answer(settings, user, session.sid, now),
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": max(0, int(session.expires_at) - int(now)),
    }


def refresh_with_access_token(settings: Settings, access_token: str) -> dict[str, object]:
    """A new access token for the live session of an unexpired access token."""
    principal = authenticate(settings, access_token)
    return access_token_answer(settings, principal.user, principal.claims.sid, clock.now())


def _is_live(claims: AccessClaims) -> bool:
    try:
        session, user = load_session_and_user(claims.sid, claims.openid)
        ensure_live(session, user, user_id=claims.user_id, now=clock.now())
    except ServiceError as exc:
        if exc.reason is not Reason.SESSION_REVOKED:
            raise
        return False
    return True


def logout(settings: Settings, access_token: str, *, everywhere: bool) -> None:
    """Revoke the token's session (or every session of its user). A token past `exp` may still log out.

    Ending every device takes a live session: the token of a session already over (an old token found
    in a log) ends at most that session, and the answer is the same as for any repeated logout.
    """
    claims = verify_access_token(settings, jwt_keys(settings), access_token, allow_expired=True)
    logs.bind_openid(claims.openid)
    if everywhere and _is_live(claims):
        revoke_all_sessions(claims.openid, clock.now())
    revoke_session(claims.sid, claims.user_id)
