"""Sessions: start, refresh-token rotation with a grace window and reuse detection, revocation."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from pynamodb.models import Model
from pynamodb.transactions import TransactGet, TransactWrite

from shared.clock import micros
from shared.crypto import sha256_hex
from shared.errors import Reason, ServiceError, StorageUnavailable
from shared.models import SessionModel, UserModel, storage_errors, write_if
from shared.tokens import new_refresh_token, new_session_id, next_refresh_token, refresh_token_session

# A rotated refresh token presented again this soon (two tabs, a retry) is a race, not a theft.
REUSE_GRACE_S = 10
# How far back a presented token is recognised as an ancestor of the session's chain (theft signal).
MAX_ANCESTRY = 64
# DynamoDB deletes expired sessions a day later; until then a late token still reads as expired.
TTL_SLACK_S = 86400


@dataclass(frozen=True)
class IssuedRefresh:
    """A session and the refresh token its holder should now use."""

    session: SessionModel
    refresh_token: str = field(repr=False)


def _revoked(message: str = "会话已失效, 请重新登录") -> ServiceError:
    return ServiceError(Reason.SESSION_REVOKED, message)


def _invalid_refresh() -> ServiceError:
    return ServiceError(Reason.REFRESH_TOKEN_INVALID, "刷新令牌无效或已过期, 请重新登录")


def start_session(
    *, user_id: int, openid: str, refresh_ttl: int, now: float, alongside: Sequence[Model] = ()
) -> IssuedRefresh:
    """Store a new session and answer its first refresh token.

    `alongside` items are written in the same DynamoDB transaction (one round trip, all or nothing).
    """
    sid = new_session_id()
    token = new_refresh_token(sid)
    session = SessionModel(
        sid,
        user_id=user_id,
        openid=openid,
        refresh_hash=sha256_hex(token),
        created_at_us=micros(now),
        expires_at=int(now) + refresh_ttl,
        ttl=int(now) + refresh_ttl + TTL_SLACK_S,
    )
    new = SessionModel.sid.does_not_exist()

    def save() -> None:
        if not alongside:
            session.save(condition=new)
            return
        with TransactWrite(connection=SessionModel._get_connection().connection) as transaction:
            transaction.save(session, condition=new)
            for item in alongside:
                transaction.save(item)

    if not write_if(save):
        # A random 128-bit id already taken: never expected, so no token and no retry of our own.
        raise StorageUnavailable()
    return IssuedRefresh(session, token)


def rotate_refresh_token(token: str, *, chain_key: bytes, refresh_ttl: int, now: float) -> IssuedRefresh:
    """Exchange a refresh token for the next one (one conditional write on the common path)."""
    sid = refresh_token_session(token)
    if sid is None:
        raise _invalid_refresh()
    presented = sha256_hex(token)
    successor = next_refresh_token(chain_key, token)
    session = SessionModel(sid)
    rotated = write_if(
        lambda: session.update(
            actions=[
                SessionModel.refresh_hash.set(sha256_hex(successor)),
                SessionModel.prev_refresh_hash.set(presented),
                SessionModel.rotated_at.set(now),
                SessionModel.generation.add(1),
                SessionModel.expires_at.set(int(now) + refresh_ttl),
                SessionModel.ttl.set(int(now) + refresh_ttl + TTL_SLACK_S),
            ],
            condition=(SessionModel.refresh_hash == presented)
            & (SessionModel.revoked == False)  # noqa: E712 (a DynamoDB condition, not a comparison)
            & (SessionModel.expires_at > int(now)),
        )
    )
    if not rotated:
        return _refresh_off_the_common_path(token, presented, sid, chain_key=chain_key, now=now)
    return IssuedRefresh(session, successor)


def _refresh_off_the_common_path(
    token: str, presented: str, sid: str, *, chain_key: bytes, now: float
) -> IssuedRefresh:
    with storage_errors():
        try:
            session = SessionModel.get(sid, consistent_read=True)
        except SessionModel.DoesNotExist:
            raise _invalid_refresh() from None
    if session.revoked:
        raise _revoked()
    if session.expires_at <= now:
        raise _invalid_refresh()
    if session.prev_refresh_hash is not None and hmac.compare_digest(presented, session.prev_refresh_hash):
        if now - session.rotated_at <= REUSE_GRACE_S:
            current = next_refresh_token(chain_key, token)
            if hmac.compare_digest(sha256_hex(current), session.refresh_hash):
                return IssuedRefresh(session, current)
            raise _invalid_refresh()  # the chain key changed since the rotation
        _reuse_detected(session)
    if _is_ancestor(token, session, chain_key):
        _reuse_detected(session)
    raise _invalid_refresh()


def _is_ancestor(token: str, session: SessionModel, chain_key: bytes) -> bool:
    known = {session.refresh_hash, session.prev_refresh_hash}
    candidate = token
    for _ in range(min(int(session.generation), MAX_ANCESTRY)):
        candidate = next_refresh_token(chain_key, candidate)
        if sha256_hex(candidate) in known:
            return True
    return False


def _reuse_detected(session: SessionModel) -> None:
    revoke_session(session.sid, int(session.user_id))
    raise ServiceError(Reason.REFRESH_TOKEN_REUSED, "刷新令牌已被使用, 会话已撤销, 请重新登录")


def revoke_session(sid: str, user_id: int) -> None:
    """Mark a session revoked; a session that no longer exists is already as good as revoked."""
    write_if(
        lambda: SessionModel(sid).update(
            actions=[SessionModel.revoked.set(True)],
            condition=SessionModel.sid.exists() & (SessionModel.user_id == user_id),
        )
    )


def ensure_live(session: SessionModel, user: UserModel, *, user_id: int, now: float) -> None:
    """Raise SESSION_REVOKED unless the session is live and belongs to the user."""
    if session.revoked or session.expires_at <= now or int(session.user_id) != user_id:
        raise _revoked()
    if user.id is None or int(user.id) != user_id:
        raise _revoked()
    if session.created_at_us <= user.sessions_revoked_at:
        raise _revoked()


def load_session_and_user(sid: str, openid: str) -> tuple[SessionModel, UserModel]:
    """Read a session and its user in one strongly consistent round trip."""
    with storage_errors():
        # Reuse the models' own connection: a second botocore client would cost cold-start time.
        connection = SessionModel._get_connection().connection
        with TransactGet(connection=connection) as transaction:
            session_future = transaction.get(SessionModel, sid)
            user_future = transaction.get(UserModel, openid)
        try:
            return session_future.get(), user_future.get()
        except (SessionModel.DoesNotExist, UserModel.DoesNotExist):
            raise _revoked() from None


def load_user(openid: str) -> UserModel:
    """Read a user with a strongly consistent read."""
    with storage_errors():
        try:
            return UserModel.get(openid, consistent_read=True)
        except UserModel.DoesNotExist:
            raise _revoked() from None
