"""Login abuse limits, kept in storage so every function instance shares them.

Both limits are built so that a successful login costs no storage round trip more than it would
without them.

Per openid: at most N logins in a burst, then N per window (default 10 per 60 s). The bucket is GCRA
(a token bucket kept as a single number, the "theoretical arrival time") stored with the user and
taken *in the write that stores the user at login* (`Storage.upsert_user_on_login` with a `Rate`):
an openid over its limit gets 429 and nothing of the login is written. On DynamoDB a login costs one
write unless the same user logged in less than one interval ago (then two: see the adapter).

Per IP: login codes that WeChat rejected, per source IP (an IPv6 address by its /64) and fixed window
(default 30 per 60 s), counted atomically under the bucket `ip#<ip>#<window>` (expired with its window)
-- only when WeChat rejected the code, so successful logins cost nothing and thousands of users
behind one NAT are not limited by each other's success. An instance that counts an IP over its limit
refuses that IP's logins (429, before any storage or WeChat call) until the window ends. Instances do
not share what they learned: an IP over its limit may still reach WeChat once per other warm instance
per window (with a reserved concurrency C, at most limit + C rejected codes per IP per window).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import RateLimited, Reason, ServiceError
from shared.settings import Settings
from shared.storage.base import Rate, Storage

logger = logging.getLogger(__name__)

# How many blocked IPs one instance remembers (expired ones are forgotten first).
MAX_REMEMBERED_IPS = 4096
IPV6_PREFIX = 64


def openid_login_rate(settings: Settings) -> Rate | None:
    """The per-openid login rate of these settings, or None when it is off."""
    if settings.login_limit_per_openid <= 0:
        return None
    return Rate(settings.login_limit_per_openid, settings.rate_limit_window_s)


def ip_bucket(client_ip: str | None) -> str | None:
    """The key an address is limited under: IPv4 as is, IPv6 by its /64 (one subscriber's prefix);
    None for anything that is not an IP address (no per-IP limit then)."""
    try:
        address = ipaddress.ip_address((client_ip or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


_blocked: dict[str, float] = {}
_blocked_lock = threading.Lock()


def _blocked_until(key: str) -> float:
    with _blocked_lock:
        return _blocked.get(key, 0.0)


def _remember_blocked(key: str, until: float, now: float) -> None:
    with _blocked_lock:
        if len(_blocked) >= MAX_REMEMBERED_IPS:
            for stale in [k for k, v in _blocked.items() if v <= now]:
                del _blocked[stale]
            if len(_blocked) >= MAX_REMEMBERED_IPS:
                del _blocked[min(_blocked, key=_blocked.__getitem__)]
        _blocked[key] = max(until, _blocked.get(key, 0.0))


def forget_blocked_ips() -> None:
    """Forget what this instance learned (tests)."""
    with _blocked_lock:
        _blocked.clear()


def refuse_blocked_ip(settings: Settings, client_ip: str | None, now: float) -> None:
    """RATE_LIMITED when this instance counted the caller's IP over its limit in the current window."""
    key = ip_bucket(client_ip)
    if key is None or settings.login_failures_per_ip <= 0:
        return
    until = _blocked_until(key)
    if until > now:
        raise RateLimited(until - now, "登录失败次数过多")


@contextmanager
def counting_rejected_codes(
    settings: Settings, store: Storage, client_ip: str | None, now: float
) -> Iterator[None]:
    """Count a WECHAT_CODE_INVALID raised inside the block against the caller's IP (best effort:
    the answer stays WeChat's even if the count cannot be stored)."""
    try:
        yield
    except ServiceError as exc:
        key = ip_bucket(client_ip)
        limit = settings.login_failures_per_ip
        if exc.reason is Reason.WECHAT_CODE_INVALID and key is not None and limit > 0:
            _count_rejection(store, key, limit, settings.rate_limit_window_s, now)
        raise


def _count_rejection(store: Storage, key: str, limit: int, window_s: int, now: float) -> None:
    window = int(now // window_s)
    ends = (window + 1) * window_s
    try:
        count = store.count_rejected_code(f"ip#{key}#{window}", window_ends=ends)
    except ServiceError:
        logger.warning("could not count a rejected login code: storage unavailable")
        return
    if count >= limit:
        if _blocked_until(key) < ends:
            logger.warning("login attempts from %s refused until the window ends (%d s)", key, ends - now)
        _remember_blocked(key, ends, now)
