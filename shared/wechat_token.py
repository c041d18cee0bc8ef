"""WeChat's server access_token: fetched from `stable_token`, shared by every function instance through
storage, refreshed ahead of expiry by one instance at a time, and refreshed once when WeChat rejects it.

Why this shape: every instance that fetches a token on its own, or that force-refreshes on 40001, can
invalidate the token the others hold (WeChat keeps one valid token per app). Here a token is fetched in
normal mode (which returns the current token), the refresh is collapsed by a conditional lease write in
storage and a lock in the process, and a rejected token is invalidated conditionally on its version,
so the instances that saw the same 40001 trigger one refresh, not one each.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared import clock, deadline
from shared.crypto import derive_key
from shared.deadline import REQUEST_LIFETIME_S
from shared.settings import Settings
from shared.storage.base import Storage
from shared.wechat import (
    MIN_ATTEMPT_S,
    Answer,
    raise_for_credentials,
    raise_for_rate_limit,
    raise_if_out_of_time,
    request_json,
    time_for_wechat,
    wechat_unavailable,
)
from shared.wechat_token_store import (
    StoredToken,
    acquire_lease,
    invalidate_token,
    read_token,
    release_lease,
    save_token,
)

logger = logging.getLogger(__name__)

# WeChat hands out a new token in the last 5 minutes of the old one's life; refreshing a minute into
# that window leaves room for clock skew (earlier, normal mode would answer the old token again).
REFRESH_AHEAD_S = 240
# A token this close to its expiry is not used at all (it could expire in flight).
EXPIRY_MARGIN_S = 30
# The lease outlives the request of its holder (whose refresh, one or two fetches, ends by that
# request's deadline), so it only lapses if its holder died. An instance with no usable token waits for
# another one's refresh as long as its own request's deadline leaves time to call WeChat with the token.
LEASE_S = REQUEST_LIFETIME_S
POLL_S = (0.05, 0.1, 0.2, 0.3, 0.5)
# WeChat's answers when the access_token it was given is invalid or expired.
TOKEN_REJECTED = frozenset({40001, 42001})
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    version: int
    expires_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - REFRESH_AHEAD_S


def _usable(stored: StoredToken, now: float) -> _Token | None:
    if stored.token is None or stored.invalidated or now >= stored.expires_at - EXPIRY_MARGIN_S:
        return None
    return _Token(stored.token, stored.version, stored.expires_at)


class AccessTokenManager:
    """The app's WeChat access_token and the calls that need it; build once per process, thread-safe."""

    def __init__(self, settings: Settings, http: httpx.Client, store: Storage) -> None:
        self._settings = settings
        self._http = http
        self._store = store
        self._appid = settings.wx_appid
        self._key = derive_key(settings.session_key_encryption_key, "wechat-access-token")
        self._lock = threading.Lock()
        self._cached: _Token | None = None

    def token(self) -> str:
        """A valid access_token, from this process's memory, storage, or (one caller at a time) WeChat."""
        return self._current().value

    def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call a WeChat API that takes `?access_token=`; answers its decoded JSON body.

        A token WeChat rejects (40001/42001) is refreshed and the call retried once. Any other errcode is
        the caller's to map. Transport faults, 5xx and non-JSON answers raise WECHAT_UNAVAILABLE.
        """
        return self.send(method, path, json=json, params=params).body

    def send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        """`call`, answering the whole Answer: also whether a retry followed an attempt that may have
        reached WeChat (a single-use code may then read "invalid" through no fault of the user)."""
        raise_if_out_of_time()
        current = self._current()
        answer = self._send(method, path, current, json=json, params=params)
        if answer.errcode in TOKEN_REJECTED:
            logger.warning("wechat rejected the access_token (errcode %d): refreshing once", answer.errcode)
            self._invalidate(current)
            retry = self._current(rejected_version=current.version)
            answer = self._send(method, path, retry, json=json, params=params)
        return answer

    def _send(
        self,
        method: str,
        path: str,
        token: _Token,
        *,
        json: dict[str, Any] | None,
        params: dict[str, str] | None,
    ) -> Answer:
        query = {**(params or {}), "access_token": token.value}
        return request_json(
            self._http, method, path, params=query, json=json, timeout_s=self._settings.wx_timeout_s
        )

    def _current(self, rejected_version: int | None = None) -> _Token:
        cached = self._cached
        if cached is not None and cached.fresh(clock.now()) and cached.version != rejected_version:
            return cached
        # One thread per process goes to storage (and maybe WeChat); the others wait for its answer,
        # within their own request's deadline (the one that refreshes may have a later one).
        if not self._lock.acquire(timeout=time_for_wechat(deadline.current())):
            raise wechat_unavailable("access_token 刷新超时")
        try:
            cached = self._cached
            if cached is not None and cached.fresh(clock.now()) and cached.version != rejected_version:
                return cached
            self._cached = self._shared_token()
            return self._cached
        finally:
            self._lock.release()

    def _invalidate(self, rejected: _Token) -> None:
        # Only the first instance to report this version marks it; the others find it already refreshed.
        # Storage first, memory second: a thread of ours that reloads in between must not find it valid.
        invalidate_token(self._store, self._appid, rejected.version)
        with self._lock:
            if self._cached is not None and self._cached.version == rejected.version:
                self._cached = None

    def _shared_token(self) -> _Token:
        limit = deadline.current()
        for attempt in itertools.count():
            now = clock.now()
            stored = read_token(self._store, self._appid, self._key)
            usable = _usable(stored, now)
            if usable is not None and usable.fresh(now):
                return usable
            holder = acquire_lease(self._store, self._appid, now=now, lease_s=LEASE_S)
            if holder is not None:
                try:
                    return self._refresh_under_lease(usable)
                finally:
                    release_lease(self._store, self._appid, holder)
            if usable is not None:
                # Another instance is refreshing ahead of expiry; the current token still works meanwhile.
                return usable
            pause = POLL_S[min(attempt, len(POLL_S) - 1)]
            if time_for_wechat(limit) < pause + MIN_ATTEMPT_S:
                break
            time.sleep(pause)
        raise wechat_unavailable("access_token 刷新超时")

    def _refresh_under_lease(self, usable_before: _Token | None) -> _Token:
        # Another instance may have stored a new token between our read and our lease.
        stored = read_token(self._store, self._appid, self._key)
        now = clock.now()
        usable = _usable(stored, now)
        if usable is not None and usable.fresh(now):
            return usable
        try:
            value, expires_in = self._fetch(force_refresh=False)
            if stored.invalidated and value == stored.token:
                # Normal mode handed back the very token WeChat just rejected: only a forced refresh helps.
                value, expires_in = self._fetch(force_refresh=True)
        except Exception:
            fallback = usable or usable_before
            if fallback is None:
                raise
            logger.warning("access_token refresh failed; the current token stays in use until it expires")
            return fallback
        expires_at = int(clock.now()) + expires_in
        version = save_token(
            self._store, self._appid, self._key, value, expires_at=expires_at, expected_version=stored.version
        )
        if version is None:
            # Our lease lapsed and another instance stored a token meanwhile: it is just as good.
            logger.warning("access_token was refreshed concurrently; keeping the fetched one in memory only")
            return _Token(value, stored.version, expires_at)
        logger.info("wechat access_token refreshed (version %d, expires in %d s)", version, expires_in)
        return _Token(value, version, expires_at)

    def _fetch(self, *, force_refresh: bool) -> tuple[str, int]:
        body = {
            "grant_type": "client_credential",
            "appid": self._settings.wx_appid,
            "secret": self._settings.wx_secret,
            "force_refresh": force_refresh,
        }
        answer = request_json(
            self._http, "POST", STABLE_TOKEN_PATH, json=body, timeout_s=self._settings.wx_timeout_s
        )
        raise_for_credentials(answer.errcode)
        raise_for_rate_limit(answer.errcode)
        if answer.errcode != 0:
            raise wechat_unavailable(f"错误码: {answer.errcode}")
        token, expires_in = answer.body.get("access_token"), answer.body.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise wechat_unavailable("incomplete access_token answer")
        return token, expires_in
