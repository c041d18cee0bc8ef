"""The login flow: WeChat code exchange, user upsert, new session, tokens."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared import clock, logs
from shared.auth import TokenPair, access_token_answer
from shared.content_security import screen_login_nickname
from shared.errors import Reason, ServiceError, StorageUnavailable
from shared.keys import session_key_cipher_key
from shared.login_replay import FirstLogin, claim_code, login_record, release_code, remember_login
from shared.phone import phone_from_code, save_phone
from shared.ratelimit import counting_rejected_codes, openid_login_rate, refuse_blocked_ip
from shared.sessions import start_session
from shared.settings import Settings
from shared.storage.base import LoginRecord, Storage, User
from shared.users import UserSummary, upsert_on_login, user_summary
from shared.wechat import WeChatClient
from shared.wechat_token import AccessTokenManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginAnswer(TokenPair):
    """What a login answers. `phone_masked` / `phone_error` only with a phone code (None: absent)."""

    is_new_user: bool
    user: UserSummary
    phone_masked: str | None = None
    phone_error: str | None = None


@dataclass(frozen=True)
class _PhoneOutcome:
    phone_masked: str | None = None
    phone_error: str | None = None


def login(
    settings: Settings,
    store: Storage,
    wechat: WeChatClient,
    *,
    code: str,
    nickname: str | None = None,
    avatar: str | None = None,
    phone_code: str | None = None,
    tokens: AccessTokenManager | None = None,
    client_ip: str | None = None,
) -> LoginAnswer:
    """Log a mini-program user in with a `wx.login` code. A failed exchange writes nothing.

    A code that already succeeded in the last 5 minutes (a client retry) is answered for the same user
    without WeChat; its nickname and avatar are ignored. With `phone_code` the phone is bound too.
    """
    now = clock.now()
    refuse_blocked_ip(settings, client_ip, now)
    first = claim_code(store, code)
    now = clock.now()  # the claim may have waited for a concurrent request with the same code
    replay: LoginRecord | None = None
    if first is None:
        try:
            user, is_new = _exchange(
                settings,
                store,
                wechat,
                code=code,
                nickname=nickname,
                avatar=avatar,
                now=now,
                tokens=tokens,
                client_ip=client_ip,
            )
        except Exception:
            release_code(store, code)
            raise
        # Saved with the session: the replay record costs no round trip of its own.
        replay = login_record(code, openid=user.openid, is_new_user=is_new, now=now)
    else:
        user, is_new = _replayed(settings, store, first, now), first.is_new_user
    phone = _PhoneOutcome()
    if phone_code is not None and tokens is not None and not (first is not None and user.phone_masked):
        # A replay whose first answer already bound a phone skips it: its phone code is spent too.
        try:
            user, phone = _bind_phone_at_login(settings, store, tokens, user, phone_code, now)
        except ServiceError:
            if replay is not None:
                _remember_if_possible(store, code, user, is_new, now)
            raise
    try:
        issued = start_session(
            store,
            user_id=user.id,
            openid=user.openid,
            refresh_ttl=settings.refresh_token_ttl,
            now=now,
            replay=replay,
        )
    except ServiceError:
        if replay is not None:
            _remember_if_possible(store, code, user, is_new, now)
        raise
    access = access_token_answer(settings, user, issued.session, now)
    return LoginAnswer(
        access_token=access.access_token,
        token_type=access.token_type,
        expires_in=access.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=settings.refresh_token_ttl,
        is_new_user=is_new,
        user=user_summary(user),
        phone_masked=phone.phone_masked,
        phone_error=phone.phone_error,
    )


def _exchange(
    settings: Settings,
    store: Storage,
    wechat: WeChatClient,
    *,
    code: str,
    nickname: str | None,
    avatar: str | None,
    now: float,
    tokens: AccessTokenManager | None,
    client_ip: str | None = None,
) -> tuple[User, bool]:
    with counting_rejected_codes(settings, store, client_ip, now):
        identity = wechat.code_to_session(code)
    logs.bind_openid(identity.openid)
    # A nickname WeChat's content check rejects (or cannot check) is not saved; the login goes on.
    nickname = screen_login_nickname(tokens, identity.openid, nickname)
    user, is_new = upsert_on_login(
        store,
        openid=identity.openid,
        session_key=identity.session_key,
        unionid=identity.unionid,
        nickname=nickname,
        avatar=avatar,
        encryption_key=session_key_cipher_key(settings),
        now=now,
        rate=openid_login_rate(settings),
    )
    return user, is_new


def _remember_if_possible(store: Storage, code: str, user: User, is_new: bool, now: float) -> None:
    """The session was not stored, but the code is spent: let a retry of it be answered as a replay."""
    try:
        remember_login(store, code, openid=user.openid, is_new_user=is_new, now=now)
    except ServiceError:
        logger.warning("could not record a login whose session failed: storage unavailable")


def _replayed(settings: Settings, store: Storage, first: FirstLogin, now: float) -> User:
    """The user of a replayed code, read in a write that takes from the same per-openid login budget
    as a fresh login: a leaked code cannot mint sessions without limit within its 5 minutes."""
    logs.bind_openid(first.openid)
    user = store.take_login_quota(first.openid, openid_login_rate(settings), now)
    if user is None:
        raise StorageUnavailable()  # the replay record is written after its upsert: never expected
    return user


def _bind_phone_at_login(
    settings: Settings, store: Storage, tokens: AccessTokenManager, user: User, phone_code: str, now: float
) -> tuple[User, _PhoneOutcome]:
    """Bind the phone; a failure does not fail the login (its code is spent) but is reported."""
    try:
        phone = phone_from_code(tokens, phone_code)
        return save_phone(settings, store, user, phone, now), _PhoneOutcome(phone_masked=phone.masked)
    except ServiceError as exc:
        if exc.reason is Reason.STORAGE_UNAVAILABLE:
            raise
        logger.warning("phone binding at login failed: %s", exc.reason.value)
        return user, _PhoneOutcome(phone_error=exc.reason.value)
