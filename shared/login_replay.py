"""Idempotent login for retried codes: a `wx.login` code that already succeeded, sent again within
5 minutes, is answered for the same user without asking WeChat again (WeChat would say 40163).

One CacheModel item per code under `login#<sha256(code)>` (never the code itself), expired by TTL:
- claimed: the request that puts it first (conditionally) owns the code and exchanges it at WeChat;
  `data` is absent and `expires_at` is short, so a crashed owner holds nobody up for long;
- done: `data` holds the first answer's openid and `is_new_user`, `expires_at` 5 minutes on.
A request that finds the code claimed (two requests racing with one code: a retry of a slow first
request) waits for the owner's answer instead of spending the code's single use a second time, for as
long as its own request's deadline leaves time to ask WeChat itself.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from shared import clock, deadline
from shared.crypto import sha256_hex
from shared.deadline import REQUEST_LIFETIME_S
from shared.errors import ServiceError
from shared.models import CacheModel, storage_errors, write_if
from shared.wechat import MIN_ATTEMPT_S, time_for_wechat

logger = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300
# A claim outlives its owner's request, so it lapses by itself only when the owner was killed.
CLAIM_S = REQUEST_LIFETIME_S
# DynamoDB's TTL deletes the item some time after this; until then `expires_at` is what counts.
TTL_SLACK_S = 3600
POLL_S = (0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class FirstLogin:
    """What the first successful login with a code answered."""

    openid: str
    is_new_user: bool


def _key(code: str) -> str:
    return f"login#{sha256_hex(code)}"


def claim_code(code: str) -> FirstLogin | None:
    """None: this request owns `code` and must exchange it, then `remember_login` or `release_code`.

    A FirstLogin: the code already succeeded less than 5 minutes ago; answer as a replay of it.
    Another request holding the claim is waited for until this request's deadline leaves WeChat only
    time for one short attempt: the owner's answer is the better one (WeChat would say 40163).
    """
    limit = deadline.current()
    for attempt in range(1_000):
        now = int(clock.now())
        claim = CacheModel(_key(code), expires_at=now + CLAIM_S, ttl=now + CLAIM_S + TTL_SLACK_S)
        free = CacheModel.pk.does_not_exist() | (CacheModel.expires_at < now)
        if write_if(lambda: claim.save(condition=free)):  # noqa: B023 (called at once)
            return None
        with storage_errors():
            try:
                item = CacheModel.get(_key(code), consistent_read=True)
            except CacheModel.DoesNotExist:
                continue  # released since: claim it again
        if item.data:
            record = json.loads(item.data)
            return FirstLogin(str(record["openid"]), bool(record["is_new_user"]))
        pause = POLL_S[min(attempt, len(POLL_S) - 1)]
        if time_for_wechat(limit) < pause + MIN_ATTEMPT_S:
            break
        time.sleep(pause)
    # The owner neither answered nor released in time: let WeChat judge the code (while there is time).
    return None


def login_record(code: str, *, openid: str, is_new_user: bool, now: float) -> CacheModel:
    """The record of a successful login with an owned code, to be saved with its session."""
    return CacheModel(
        _key(code),
        data=json.dumps({"openid": openid, "is_new_user": is_new_user}),
        expires_at=int(now) + REPLAY_WINDOW_S,
        ttl=int(now) + REPLAY_WINDOW_S + TTL_SLACK_S,
    )


def remember_login(code: str, *, openid: str, is_new_user: bool, now: float) -> None:
    """Record the successful login with an owned code; a record already there (first answer) stays."""
    item = login_record(code, openid=openid, is_new_user=is_new_user, now=now)
    write_if(lambda: item.save(condition=CacheModel.data.does_not_exist()))


def release_code(code: str) -> None:
    """Drop an owned claim after a failed login, so a retry need not wait for it to lapse."""
    try:
        write_if(lambda: CacheModel(_key(code)).delete(condition=CacheModel.data.does_not_exist()))
    except ServiceError:
        # Storage is failing: the claim lapses by itself within CLAIM_S.
        logger.warning("could not release a login claim: storage unavailable")
