"""The login flow: WeChat code exchange, user upsert, new session, tokens."""

from __future__ import annotations

from shared import clock
from shared.auth import access_token_answer
from shared.sessions import start_session
from shared.settings import Settings
from shared.users import upsert_on_login, user_summary
from shared.wechat import WeChatClient


def login(
    settings: Settings,
    wechat: WeChatClient,
    *,
    code: str,
    nickname: str | None = None,
    avatar: str | None = None,
) -> dict[str, object]:
    """Log a mini-program user in with a `wx.login` code. A failed exchange writes nothing."""
    identity = wechat.code_to_session(code)
    now = clock.now()
    user, is_new = upsert_on_login(
        openid=identity.openid,
        session_key=identity.session_key,
        unionid=identity.unionid,
        nickname=nickname,
        avatar=avatar,
        encryption_key=settings.session_key_encryption_key,
        now=now,
    )
    issued = start_session(
        user_id=int(user.id or 0), openid=user.openid, refresh_ttl=settings.refresh_token_ttl, now=now
    )
    return {
        **access_token_answer(settings, user, issued.session.sid, now),
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": settings.refresh_token_ttl,
        "is_new_user": is_new,
        "user": user_summary(user),
    }
