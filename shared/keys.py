"""Key material derived from settings once per process."""

from __future__ import annotations

from functools import lru_cache

from shared.crypto import derive_key
from shared.settings import Settings
from shared.tokens import KeyRing


@lru_cache(maxsize=4)
def jwt_keys(settings: Settings) -> KeyRing:
    """The JWT signing key and every key that still verifies."""
    return KeyRing.from_settings(settings)


@lru_cache(maxsize=4)
def refresh_chain_key(settings: Settings) -> bytes:
    """The key that derives each refresh token of a session from the previous one."""
    return derive_key(settings.session_key_encryption_key, "refresh-token-chain")


@lru_cache(maxsize=4)
def session_key_cipher_key(settings: Settings) -> bytes:
    """The AES-256-GCM key of session_keys at rest (derived: the configured key serves no use directly)."""
    return derive_key(settings.session_key_encryption_key, "session-key-at-rest")
