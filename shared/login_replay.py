"""Idempotent login for retried codes: a `wx.login` code that already succeeded, sent again within
5 minutes, is answered for the same user without asking WeChat again (WeChat would say 40163).

One stored record per code, keyed by the SHA-256 of the code (never the code itself), expiring:
- claimed: the request that claims it first (`Storage.claim_login_code`) owns the code and exchanges it
  at WeChat; the claim is short, so a crashed owner holds nobody up for long;
- done: the first answer's openid and `is_new_user` (a `LoginRecord`), kept 5 minutes.
A request that finds the code claimed (two requests racing with one code: a retry of a slow first
request) waits for the owner's answer instead of spending the code's single use a second time, for as
long as its own request's deadline leaves time to ask WeChat itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared import clock, deadline
from shared.crypto import sha256_hex
from shared.deadline import REQUEST_LIFETIME_S
from shared.errors import ServiceError
from shared.storage.base import LoginRecord, Storage
from shared.wechat import MIN_ATTEMPT_S, time_for_wechat

logger = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300
# A claim outlives its owner's request, so it lapses by itself only when the owner was killed.
CLAIM_S = REQUEST_LIFETIME_S
POLL_S = (0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class FirstLogin:
    """What the first successful login with a code answered."""

    openid: str
    is_new_user: bool


def _key(code: str) -> str:
    return sha256_hex(code)


def claim_code(store: Storage, code: str) -> FirstLogin | None:
    """None: this request owns `code` and must exchange it, then `remember_login` or `release_code`.

    A FirstLogin: the code already succeeded less than 5 minutes ago; answer as a replay of it.
    Another request holding the claim is waited for until this request's deadline leaves WeChat only
    time for one short attempt: the owner's answer is the better one (WeChat would say 40163).
    """
    limit = deadline.current()
    for attempt in range(1_000):
        now = int(clock.now())
        claimed = store.claim_login_code(_key(code), now=now, claim_until=now + CLAIM_S)
        if claimed is None:
            return None
        if isinstance(claimed, LoginRecord):
            return FirstLogin(claimed.openid, claimed.is_new_user)
        pause = POLL_S[min(attempt, len(POLL_S) - 1)]
        if time_for_wechat(limit) < pause + MIN_ATTEMPT_S:
            break
        time.sleep(pause)
    # The owner neither answered nor released in time: let WeChat judge the code (while there is time).
    return None


def login_record(code: str, *, openid: str, is_new_user: bool, now: float) -> LoginRecord:
    """The record of a successful login with an owned code, to be saved with its session."""
    return LoginRecord(_key(code), openid, is_new_user, int(now) + REPLAY_WINDOW_S)


def remember_login(store: Storage, code: str, *, openid: str, is_new_user: bool, now: float) -> None:
    """Record the successful login with an owned code; a record already there (first answer) stays."""
    store.remember_login(login_record(code, openid=openid, is_new_user=is_new_user, now=now))


def release_code(store: Storage, code: str) -> None:
    """Drop an owned claim after a failed login, so a retry need not wait for it to lapse."""
    try:
        store.release_login_code(_key(code))
    except ServiceError:
        # Storage is failing: the claim lapses by itself within CLAIM_S.
        logger.warning("could not release a login claim: storage unavailable")
