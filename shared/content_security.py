"""WeChat's content-security check (`msg_sec_check` v2) for the text users write: nickname and bio.

WeChat's review of a mini-program requires user text to be checked before it is published. v2 needs
the writer's openid (who must have used the mini-program in the last two hours: true for whoever is
logging in or editing a profile) and a scene; a profile is scene 1.

Outcomes: `pass` saves; `review` saves too (WeChat is unsure; logged with its label and trace id,
never the text); `risky` is CONTENT_REJECTED. When the check cannot be made (WeChat unavailable,
rate-limited, an unexpected answer) the two callers differ on purpose:
- PATCH /user/profile fails closed: it answers that error and saves nothing, since saving unchecked
  text is what WeChat's review forbids, and the user can simply retry.
- a login never fails because of it: the login succeeds and the nickname is not saved
  (`screen_login_nickname`), as for a rejected one; the user can set it later with PATCH.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import Reason, ServiceError
from shared.users import ANONYMOUS_NICKNAME
from shared.wechat import errcode_of, raise_for_credentials, raise_for_rate_limit, wechat_unavailable
from shared.wechat_token import AccessTokenManager

logger = logging.getLogger(__name__)

MSG_SEC_CHECK_PATH = "/wxa/msg_sec_check"
SCENE_PROFILE = 1
# v1's "content is risky" errcode; v2 answers errcode 0 with result.suggest instead, but a gateway or
# an older API version may still answer it.
RISKY_ERRCODE = 87014
SUGGESTIONS = frozenset({"pass", "review", "risky"})


def check_text(
    tokens: AccessTokenManager, openid: str, text: str, *, scene: int = SCENE_PROFILE, field: str = "内容"
) -> None:
    """Return if WeChat passes `text` written by `openid` (or wants a review); else raise.

    CONTENT_REJECTED when WeChat judges it risky (the message names `field`, never the text);
    WECHAT_RATE_LIMITED, WECHAT_UNAVAILABLE or SERVER_MISCONFIGURED when the check cannot be made.
    """
    body = tokens.call(
        "POST",
        MSG_SEC_CHECK_PATH,
        json={"content": text, "version": 2, "scene": scene, "openid": openid},
    )
    errcode = errcode_of(body)
    if errcode == RISKY_ERRCODE:
        raise _rejected(field)
    raise_for_rate_limit(errcode)
    raise_for_credentials(errcode)
    if errcode != 0:
        raise wechat_unavailable(f"内容安全检测失败, 错误码: {errcode}")
    result: Any = body.get("result")
    suggest = result.get("suggest") if isinstance(result, dict) else None
    if suggest not in SUGGESTIONS:
        raise wechat_unavailable("内容安全检测结果不完整")
    if suggest == "risky":
        logger.info(
            "content rejected: scene %d, label %s, trace_id %s", scene, result.get("label"), _trace(body)
        )
        raise _rejected(field)
    if suggest == "review":
        logger.info(
            "content accepted for review: scene %d, label %s, trace_id %s",
            scene,
            result.get("label"),
            _trace(body),
        )


def check_profile_text(
    tokens: AccessTokenManager,
    openid: str,
    *,
    nickname: str | None,
    bio: str | None,
    current_nickname: str = "",
    current_bio: str = "",
) -> None:
    """Check the nickname and bio a profile update would save; text that is empty or unchanged is not
    sent again (it was checked when it was saved, and empty text has nothing to check)."""
    for field, value, current in (("昵称", nickname, current_nickname), ("简介", bio, current_bio)):
        if value and value != current:
            check_text(tokens, openid, value, field=field)


def screen_login_nickname(tokens: AccessTokenManager | None, openid: str, nickname: str | None) -> str | None:
    """The nickname a login may save: `nickname` if it passes the check, else None (and the login
    goes on). None too when the check cannot be made: unchecked text is never saved."""
    if not nickname or nickname == ANONYMOUS_NICKNAME:
        return nickname  # nothing that would be saved
    if tokens is None:
        logger.warning("login nickname not saved: no content-security check available")
        return None
    try:
        check_text(tokens, openid, nickname, field="昵称")
    except ServiceError as exc:
        if exc.reason is Reason.STORAGE_UNAVAILABLE:
            raise  # the login itself is about to need DynamoDB: fail it as usual
        logger.warning("login nickname not saved: %s", exc.reason.value)
        return None
    return nickname


def _rejected(field: str) -> ServiceError:
    return ServiceError(Reason.CONTENT_REJECTED, f"{field}包含违规内容, 请修改后重试")


def _trace(body: dict[str, Any]) -> str:
    trace = body.get("trace_id")
    return trace if isinstance(trace, str) else "-"
