"""Where WeChat's server access_token lives between calls: one stored record per appid, shared by every
function instance, encrypted at rest (storage only ever sees the ciphertext), plus a short lease that
lets one instance refresh it.

The record: the token's AES-GCM ciphertext (bound to `wxtoken#<appid>`), WeChat's expiry (epoch
seconds; 0 once a caller saw WeChat reject it) and a version, +1 on every refresh. The lease
`wxtoken#<appid>`: the holder's random id, lapsing by itself at its end.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from shared.crypto import DecryptionError, decrypt_at_rest, encrypt_at_rest
from shared.storage.base import CachedWeChatToken, Storage

INVALIDATED = 0


@dataclass(frozen=True)
class StoredToken:
    """The shared token as last written; `token` is None when absent or undecryptable."""

    token: str | None = field(repr=False)
    version: int
    expires_at: float

    @property
    def invalidated(self) -> bool:
        """A caller saw WeChat reject this token (40001/42001); it must not be handed out again."""
        return self.token is not None and self.expires_at == INVALIDATED


def token_key(appid: str) -> str:
    """The name of an app's access_token: its lease's, and the context its ciphertext is bound to."""
    return f"wxtoken#{appid}"


def read_token(store: Storage, appid: str, key: bytes) -> StoredToken:
    """The shared token (strongly consistent), or an empty version-0 record when none was stored."""
    cached = store.read_wechat_token(appid)
    if cached is None:
        return StoredToken(None, 0, 0)
    token: str | None = None
    if cached.token_enc:
        try:
            token = decrypt_at_rest(key, cached.token_enc, token_key(appid))
        except DecryptionError:
            token = None  # the encryption key changed: as good as no token
    return StoredToken(token, cached.version, float(cached.expires_at))


def save_token(
    store: Storage, appid: str, key: bytes, token: str, *, expires_at: int, expected_version: int
) -> int | None:
    """Store a fresh token if nobody stored another since `expected_version`; answer its version or None."""
    version = expected_version + 1
    sealed = CachedWeChatToken(encrypt_at_rest(key, token, token_key(appid)), version, expires_at)
    saved = store.save_wechat_token_if(appid, sealed, expected_version=expected_version)
    return version if saved else None


def invalidate_token(store: Storage, appid: str, version: int) -> bool:
    """Mark token `version` rejected, unless it was already refreshed or invalidated; True if this did it."""
    return store.invalidate_wechat_token(appid, version)


def acquire_lease(store: Storage, appid: str, *, now: float, lease_s: float) -> str | None:
    """Take the refresh lease of `appid`'s token if free or lapsed; answer the holder id to release it."""
    holder = secrets.token_hex(8)
    until = int(now + lease_s) + 1
    return holder if store.acquire_lease(token_key(appid), holder=holder, now=now, until=until) else None


def release_lease(store: Storage, appid: str, holder: str) -> None:
    """Give the lease back early (only if still ours), so waiting instances need not let it lapse."""
    store.release_lease(token_key(appid), holder=holder)
