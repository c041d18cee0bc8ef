"""Where WeChat's server access_token lives between calls: one CacheModel item per appid, shared by
every function instance, encrypted at rest, plus a short lease item that lets one instance refresh it.

Items (table CACHE_TABLE):
- `wxtoken#<appid>`: `data` the AES-GCM ciphertext of the token, `expires_at` WeChat's expiry (epoch
  seconds; 0 once a caller saw WeChat reject it), `version` +1 on every refresh.
- `wxtoken#<appid>#lease`: `data` the holder's random id, `expires_at` when the lease lapses by itself.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from shared.crypto import DecryptionError, decrypt_at_rest, encrypt_at_rest
from shared.models import CacheModel, storage_errors, write_if

# DynamoDB's TTL removes an item some time after this many seconds past its expiry.
TTL_SLACK_S = 3600
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
    """The CacheModel key of an app's access_token."""
    return f"wxtoken#{appid}"


def read_token(pk: str, key: bytes) -> StoredToken:
    """The shared token (strongly consistent), or an empty version-0 record when none was stored."""
    with storage_errors():
        try:
            item = CacheModel.get(pk, consistent_read=True)
        except CacheModel.DoesNotExist:
            return StoredToken(None, 0, 0)
    token: str | None = None
    if item.data:
        try:
            token = decrypt_at_rest(key, item.data, pk)
        except DecryptionError:
            token = None  # the encryption key changed: as good as no token
    return StoredToken(token, int(item.version or 0), float(item.expires_at or 0))


def save_token(pk: str, key: bytes, token: str, *, expires_at: int, expected_version: int) -> int | None:
    """Store a fresh token if nobody stored another since `expected_version`; answer its version or None."""
    version = expected_version + 1
    item = CacheModel(
        pk,
        data=encrypt_at_rest(key, token, pk),
        version=version,
        expires_at=expires_at,
        ttl=expires_at + TTL_SLACK_S,
    )
    # Absent (first token, or deleted by TTL) or still the version the caller read.
    condition = CacheModel.pk.does_not_exist() | (CacheModel.version == expected_version)
    return version if write_if(lambda: item.save(condition=condition)) else None


def invalidate_token(pk: str, version: int) -> bool:
    """Mark token `version` rejected, unless it was already refreshed or invalidated; True if this did it."""
    return write_if(
        lambda: CacheModel(pk).update(
            actions=[CacheModel.expires_at.set(INVALIDATED)],
            condition=(CacheModel.version == version) & (CacheModel.expires_at > INVALIDATED),
        )
    )


def acquire_lease(pk: str, *, now: float, lease_s: float) -> str | None:
    """Take the refresh lease of `pk` if free or lapsed; answer the holder id to release it with."""
    holder = secrets.token_hex(8)
    lease = CacheModel(
        f"{pk}#lease", data=holder, expires_at=int(now + lease_s) + 1, ttl=int(now + lease_s) + TTL_SLACK_S
    )
    free = CacheModel.pk.does_not_exist() | (CacheModel.expires_at < int(now))
    return holder if write_if(lambda: lease.save(condition=free)) else None


def release_lease(pk: str, holder: str) -> None:
    """Give the lease back early (only if still ours), so waiting instances need not let it lapse."""
    write_if(lambda: CacheModel(f"{pk}#lease").delete(condition=CacheModel.data == holder))
