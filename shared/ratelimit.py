"""Login abuse limits, kept in DynamoDB so every function instance shares them.

Both limits are built so that a successful login costs no DynamoDB call more than it would without them.

Per openid: at most N logins in a burst, then N per window (default 10 per 60 s). The bucket is GCRA
(a token bucket kept as a single number, the "theoretical arrival time" `tat`) stored on the user's own
item and taken *in the UpdateItem that writes the user at login*, with a condition: an openid over its
limit gets 429 and nothing of the login is written. DynamoDB update expressions cannot take a
maximum, so the bucket is taken in one of two ways: "idle" (`tat` absent or in the past: restart it
from now), tried first because a returning user's previous login is long past, and "busy" (`tat` at
most `window - interval` ahead: push it one interval further) only when that condition failed. So a
login costs one write unless the same user logged in less than one interval ago (then two).

Per IP: login codes that WeChat rejected, per source IP (an IPv6 address by its /64) and fixed window
(default 30 per 60 s), counted by an atomic ADD on the cache item `rate#ip#<ip>#<window>` (expired by
TTL) -- only when WeChat rejected the code, so successful logins cost nothing and thousands of users
behind one NAT are not limited by each other's success. An instance that counts an IP over its limit
refuses that IP's logins (429, before any DynamoDB or WeChat call) until the window ends. Instances do
not share what they learned: an IP over its limit may still reach WeChat once per other warm instance
per window (with a reserved concurrency C, at most limit + C rejected codes per IP per window).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import NumberAttribute
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from shared.errors import Reason, ServiceError
from shared.models import CacheModel, storage_errors, write_if
from shared.settings import Settings

logger = logging.getLogger(__name__)

# DynamoDB's TTL deletes a counter some time after its window; until then its key names a past window.
TTL_SLACK_S = 600
# How many blocked IPs one instance remembers (expired ones are forgotten first).
MAX_REMEMBERED_IPS = 4096
IPV6_PREFIX = 64


@dataclass(frozen=True)
class Rate:
    """`limit` events per `window_s` seconds, in bursts of up to `limit`."""

    limit: int
    window_s: int

    @property
    def interval(self) -> float:
        return self.window_s / self.limit

    @property
    def tolerance(self) -> float:
        return self.window_s - self.interval


def rate_limited(retry_after_s: float, message: str = "登录过于频繁") -> ServiceError:
    """429 RATE_LIMITED with a `Retry-After` header (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(retry_after_s))
    return ServiceError(
        Reason.RATE_LIMITED, f"{message}, 请 {seconds} 秒后重试", headers={"Retry-After": str(seconds)}
    )


def openid_login_rate(settings: Settings) -> Rate | None:
    """The per-openid login rate of these settings, or None when it is off."""
    if settings.login_limit_per_openid <= 0:
        return None
    return Rate(settings.login_limit_per_openid, settings.rate_limit_window_s)


def update_within_rate(
    item: Model, actions: Sequence[Action], tat: NumberAttribute, rate: Rate | None, now: float
) -> None:
    """Apply `actions` to `item` in an UpdateItem that also takes one token from the bucket `tat`.

    RATE_LIMITED, with nothing written, when the bucket is empty. `item` is refreshed from the answer.
    """
    if rate is None:
        with storage_errors():
            item.update(actions=list(actions))
        return
    now = round(now, 3)
    attempts: tuple[tuple[list[Action], Any], ...] = (
        ([*actions, tat.set(now + rate.interval)], tat.does_not_exist() | (tat <= now)),
        ([*actions, tat.set(tat + rate.interval)], tat <= now + rate.tolerance),
    )
    for update, condition in attempts:
        if write_if(lambda: item.update(actions=update, condition=condition)):  # noqa: B023 (called at once)
            return
    # The next token is due at most one interval from now (the last one taken was due by now).
    raise rate_limited(rate.interval)


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
        raise rate_limited(until - now, "登录失败次数过多")


@contextmanager
def counting_rejected_codes(settings: Settings, client_ip: str | None, now: float) -> Iterator[None]:
    """Count a WECHAT_CODE_INVALID raised inside the block against the caller's IP (best effort:
    the answer stays WeChat's even if the count cannot be stored)."""
    try:
        yield
    except ServiceError as exc:
        key = ip_bucket(client_ip)
        limit = settings.login_failures_per_ip
        if exc.reason is Reason.WECHAT_CODE_INVALID and key is not None and limit > 0:
            _count_rejection(key, limit, settings.rate_limit_window_s, now)
        raise


def _count_rejection(key: str, limit: int, window_s: int, now: float) -> None:
    window = int(now // window_s)
    ends = (window + 1) * window_s
    counter = CacheModel(f"rate#ip#{key}#{window}")
    try:
        with storage_errors():
            counter.update(
                actions=[
                    CacheModel.counter.add(1),
                    CacheModel.expires_at.set(ends),
                    CacheModel.ttl.set(ends + TTL_SLACK_S),
                ]
            )
    except ServiceError:
        logger.warning("could not count a rejected login code: storage unavailable")
        return
    if int(counter.counter or 0) >= limit:
        if _blocked_until(key) < ends:
            logger.warning("login attempts from %s refused until the window ends (%d s)", key, ends - now)
        _remember_blocked(key, ends, now)
