"""Sessions: start, refresh-token rotation with a grace window and reuse detection, access-token
renewal by the latest token only, revocation."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import NoReturn

from shared.clock import micros
from shared.crypto import sha256_hex
from shared.errors import Reason, ServiceError
from shared.storage.base import LoginRecord, NewSession, Renewal, Rotation, Session, Storage, User
from shared.tokens import (
    new_access_jti,
    new_refresh_token,
    new_session_id,
    next_refresh_token,
    refresh_token_session,
)

# A rotated token presented again this soon (two tabs, a retry) is a race, not a theft: for refresh
# tokens and for the access token a bearer refresh replaced alike.
REUSE_GRACE_S = 10
# How far back a presented token is recognised as an ancestor of the session's chain (theft signal).
MAX_ANCESTRY = 64


@dataclass(frozen=True)
class IssuedRefresh:
    """A session and the refresh token its holder should now use."""

    session: Session
    refresh_token: str = field(repr=False)


def _revoked(message: str = "会话已失效, 请重新登录") -> ServiceError:
    return ServiceError(Reason.SESSION_REVOKED, message)


def _invalid_refresh() -> ServiceError:
    return ServiceError(Reason.REFRESH_TOKEN_INVALID, "刷新令牌无效或已过期, 请重新登录")


def start_session(
    store: Storage,
    *,
    user_id: int,
    openid: str,
    refresh_ttl: int,
    now: float,
    replay: LoginRecord | None = None,
) -> IssuedRefresh:
    """Store a new session (with the login's replay record, in the same write) and answer its first
    refresh token; the session's first access token is to carry `session.access_jti`."""
    sid = new_session_id()
    token = new_refresh_token(sid)
    new = NewSession(
        sid=sid,
        user_id=user_id,
        openid=openid,
        refresh_hash=sha256_hex(token),
        access_jti=new_access_jti(),
        created_at_us=micros(now),
        expires_at=int(now) + refresh_ttl,
    )
    store.start_session(new, replay=replay)
    session = Session(
        sid=sid,
        user_id=user_id,
        openid=openid,
        refresh_hash=new.refresh_hash,
        created_at_us=new.created_at_us,
        expires_at=new.expires_at,
        access_jti=new.access_jti,
    )
    return IssuedRefresh(session, token)


def rotate_refresh_token(
    store: Storage, token: str, *, chain_key: bytes, refresh_ttl: int, now: float
) -> IssuedRefresh:
    """Exchange a refresh token for the next one (one conditional write on the common path).

    The answer's session names the access token to issue with it (`access_jti`): a new one on a
    rotation, the session's current one when a racer inside the grace window is answered.
    """
    sid = refresh_token_session(token)
    if sid is None:
        raise _invalid_refresh()
    presented = sha256_hex(token)
    successor = next_refresh_token(chain_key, token)
    rotation = Rotation(
        sid=sid,
        presented_hash=presented,
        successor_hash=sha256_hex(successor),
        access_jti=new_access_jti(),
        now=now,
        expires_at=int(now) + refresh_ttl,
    )
    rotated = store.rotate_refresh_if_current(rotation)
    if rotated is None:
        return _refresh_off_the_common_path(store, token, presented, sid, chain_key=chain_key, now=now)
    return IssuedRefresh(rotated, successor)


def _refresh_off_the_common_path(
    store: Storage, token: str, presented: str, sid: str, *, chain_key: bytes, now: float
) -> IssuedRefresh:
    session = store.get_session(sid)
    if session is None:
        raise _invalid_refresh()  # unknown, or past its expiry
    if session.revoked:
        raise _revoked()
    if session.prev_refresh_hash is not None and hmac.compare_digest(presented, session.prev_refresh_hash):
        if now - session.rotated_at <= REUSE_GRACE_S:
            current = next_refresh_token(chain_key, token)
            if hmac.compare_digest(sha256_hex(current), session.refresh_hash):
                return IssuedRefresh(session, current)
            raise _invalid_refresh()  # the chain key changed since the rotation
        _reuse_detected(store, session)
    if _is_ancestor(token, session, chain_key):
        _reuse_detected(store, session)
    raise _invalid_refresh()


def _is_ancestor(token: str, session: Session, chain_key: bytes) -> bool:
    known = {session.refresh_hash, session.prev_refresh_hash}
    candidate = token
    for _ in range(min(session.generation, MAX_ANCESTRY)):
        candidate = next_refresh_token(chain_key, candidate)
        if sha256_hex(candidate) in known:
            return True
    return False


def _reuse_detected(store: Storage, session: Session) -> NoReturn:
    revoke_session(store, session.sid, session.user_id)
    raise ServiceError(Reason.REFRESH_TOKEN_REUSED, "刷新令牌已被使用, 会话已撤销, 请重新登录")


def renew_access(store: Storage, session: Session, presented_jti: str, *, now: float) -> Session:
    """Make a new access token the session's latest, if `presented_jti` is its latest one (one
    conditional write); answers the session, whose `access_jti` is the token to issue.

    Only the latest access token renews a session: a stolen token renewing itself is found out at
    the next renewal of the owner's (or the owner's at the thief's). The token replaced less than
    REUSE_GRACE_S ago (a retry, two tabs) is answered the current one; an older one is a theft signal:
    the session is revoked, REFRESH_TOKEN_REUSED. A session of the previous release, which recorded no
    access token, accepts its first renewal.
    """
    renewal = Renewal(sid=session.sid, presented_jti=presented_jti, new_jti=new_access_jti(), now=now)
    renewed = store.renew_access_if_current(renewal)
    if renewed is not None:
        return renewed
    current = store.get_session(session.sid)
    if current is None or current.revoked:
        raise _revoked()
    latest, previous = current.access_jti, current.prev_access_jti
    if latest is not None and hmac.compare_digest(presented_jti, latest):
        return current  # still the latest (the session changed under us otherwise): issue it again
    if (
        previous is not None
        and hmac.compare_digest(presented_jti, previous)
        and now - current.access_renewed_at <= REUSE_GRACE_S
    ):
        return current
    _reuse_detected(store, current)


def revoke_session(store: Storage, sid: str, user_id: int) -> None:
    """Mark a session revoked; a session that no longer exists is already as good as revoked."""
    store.revoke_session(sid, user_id)


def ensure_live(session: Session | None, user: User | None, *, user_id: int, now: float) -> None:
    """Raise SESSION_REVOKED unless the session is live and belongs to the user."""
    if session is None or user is None:
        raise _revoked()
    if session.revoked or session.expires_at <= now or session.user_id != user_id:
        raise _revoked()
    if user.id != user_id:
        raise _revoked()
    if session.created_at_us <= user.sessions_revoked_at:
        raise _revoked()


def load_session_and_user(store: Storage, sid: str, openid: str) -> tuple[Session, User]:
    """Read a session and its user in one strongly consistent round trip (SESSION_REVOKED if either
    is gone)."""
    session, user = store.get_session_and_user(sid, openid)
    if session is None or user is None:
        raise _revoked()
    return session, user


def load_user(store: Storage, openid: str) -> User:
    """Read a user with a strongly consistent read (SESSION_REVOKED if gone)."""
    user = store.get_user(openid)
    if user is None:
        raise _revoked()
    return user
